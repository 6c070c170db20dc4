# Mask R-CNN with a PartialNet-T0 backbone whose PAT convolutions are DPConvs
# (spec, "DPConv"). DPConvHook adds the regularisers to the detector's losses
# and logs the ratios; it reads the options below from the backbone.
# model.backbone.init_cfg.checkpoint may name an ImageNet checkpoint trained
# with DPConv (configs/partialnet-t0-dpconv_in1k.py) or without it: a plain
# PAT convolution loads into the DPConv's first channels, so the detector
# starts at the 1/4 split with the pretrained kernels.
_base_ = './mask-rcnn_partialnet-t0_coco.py'

model = dict(
    backbone=dict(
        dpconv=dict(
            budget=2.,
            theta=0.5,
            complexity_weight=0.01,
            ordering_weight=1.,
            warmup_epochs=0,
            init_gate=1e-8)))

# No weight decay on the DPConv gates (see configs/partialnet-t0-dpconv_in1k).
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'dpconv.gate': dict(decay_mult=0.)}))

custom_hooks = [dict(type='mmpartial.DPConvHook')]
