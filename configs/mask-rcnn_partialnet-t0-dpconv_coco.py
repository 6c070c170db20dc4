# Mask R-CNN with a PartialNet-T0 backbone whose PAT layers learn their
# split with a DPConv (spec, "DPConv"). DPConvHook applies the complexity
# term to the detector's losses (every task loss times (T / R)**alpha) and
# logs the ratios; it reads the options below from the backbone.
# model.backbone.init_cfg.checkpoint may name an ImageNet checkpoint trained
# with DPConv (configs/partialnet-t0-dpconv_in1k.py) or without it: a plain
# PAT layer loads into the DPConv's first channels and the attention's
# others, so the detector starts at the 1/4 split with the pretrained layer.
_base_ = './mask-rcnn_partialnet-t0_coco.py'

model = dict(
    backbone=dict(
        dpconv=dict(
            mode='split',
            loss_form='multiplicative',
            budget=2.,
            theta=0.,
            alpha=0.01,
            ordering_weight=1.,
            warmup_epochs=0,
            init_gate=1e-8)))

# No weight decay on the DPConv gates (see configs/partialnet-t0-dpconv_in1k).
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'dpconv.gate': dict(decay_mult=0.)}))

custom_hooks = [dict(type='mmpartial.DPConvHook')]
