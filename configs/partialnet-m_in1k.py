_base_ = './_base_/partialnet_in1k.py'

model = dict(
    backbone=dict(arch='m'),
    head=dict(in_channels=1024, act_cfg=dict(type='ReLU')),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.5),
        dict(type='CutMix', alpha=1.0)
    ]))

optim_wrapper = dict(
    optimizer=dict(lr=0.002, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / 0.002, by_epoch=True,
         begin=0, end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True,
         begin=20, end=300)
]
# 16 GPUs x 128 images = the recipe's batch of 2048.
auto_scale_lr = dict(base_batch_size=2048)
