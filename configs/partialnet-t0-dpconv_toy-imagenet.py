# PartialNet-T0 with DPConv on the embedded toy ImageNet
# (`python tools/make_toy_imagenet.py data/toy_imagenet`): the toy recipe of
# partialnet-t0_toy-imagenet.py with every PAT layer learning its split
# (configs/partialnet-t0-dpconv_in1k.py), for a learned-ratio plot in a few
# CPU minutes (`tools/dpconv_report.py`; docs/dpconv_ratios_toy.png).
# Three times the toy schedule (36 epochs, about 5 minutes on one core), so
# that the splits settle.
_base_ = './partialnet-t0_toy-imagenet.py'

model = dict(
    backbone=dict(
        dpconv=dict(
            mode='split',
            loss_form='multiplicative',
            budget=2.,
            theta=0.,
            alpha=0.01,
            ordering_weight=1.,
            warmup_epochs=1,
            init_gate=1e-8)))

optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'dpconv.gate': dict(decay_mult=0.)}))

max_epochs = 36
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1,
         end=max_epochs)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=12)
custom_hooks = [
    dict(type='mmpartial.TrainResolutionHook', switch_epoch=30, size=64),
    dict(type='mmpartial.DPConvHook', interval=50),
]
default_hooks = dict(checkpoint=dict(interval=12, max_keep_ckpts=1))
