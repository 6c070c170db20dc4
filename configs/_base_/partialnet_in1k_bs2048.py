# The larger variants' (M, L) schedule: lr 2e-3 at a batch of 2048
# (16 GPUs x 128 images), warming up from 1e-6 as the base recipe does.
_base_ = './partialnet_in1k.py'

base_lr = 2e-3
optim_wrapper = dict(optimizer=dict(lr=base_lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / base_lr, by_epoch=True,
         begin=0, end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=20,
         end=300)
]
auto_scale_lr = dict(base_batch_size=2048)
