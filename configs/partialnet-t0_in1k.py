_base_ = './_base_/partialnet_in1k.py'

model = dict(
    backbone=dict(arch='t0'),
    head=dict(in_channels=256, act_cfg=dict(type='GELU')),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.05),
        dict(type='CutMix', alpha=1.0)
    ]))

optim_wrapper = dict(optimizer=dict(weight_decay=0.005))

# The base pipeline without RandAugment: T0 trains without it.
train_dataloader = dict(dataset=dict(pipeline=[
    step for step in _base_.train_pipeline if step.type != 'RandAugment'
]))
