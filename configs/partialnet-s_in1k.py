_base_ = './_base_/partialnet_in1k.py'

model = dict(
    backbone=dict(arch='s'),
    head=dict(in_channels=768, act_cfg=dict(type='ReLU')),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.3),
        dict(type='CutMix', alpha=1.0)
    ]))

optim_wrapper = dict(optimizer=dict(weight_decay=0.03))
