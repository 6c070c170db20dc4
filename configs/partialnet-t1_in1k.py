_base_ = './_base_/partialnet_in1k.py'

model = dict(
    backbone=dict(arch='t1'),
    head=dict(in_channels=384, act_cfg=dict(type='GELU')),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.1),
        dict(type='CutMix', alpha=1.0)
    ]))

optim_wrapper = dict(optimizer=dict(weight_decay=0.01))

# The base pipeline with RandAugment at magnitude 3 (the base has 7).
train_dataloader = dict(dataset=dict(pipeline=[
    dict(step, magnitude_level=3) if step.type == 'RandAugment' else step
    for step in _base_.train_pipeline
]))
