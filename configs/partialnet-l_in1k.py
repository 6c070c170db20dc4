_base_ = './_base_/partialnet_in1k_bs2048.py'

model = dict(
    backbone=dict(arch='l'),
    head=dict(in_channels=1280, act_cfg=dict(type='ReLU')),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.7),
        dict(type='CutMix', alpha=1.0)
    ]))

optim_wrapper = dict(
    optimizer=dict(weight_decay=0.05), clip_grad=dict(max_norm=0.01))
