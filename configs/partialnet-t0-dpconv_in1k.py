# PartialNet-T0 with DPConv (spec, "DPConv"): the convolution of every PAT
# layer learns its split ratio, starting at the fixed 1/4. The regularisers
# (loss_dpconv_complexity, loss_dpconv_ordering), the warm-up and the ratio
# logs (dpconv_mean_ratio, dpconv_budget_usage) come from DPConvHook, which
# reads the options below from the backbone.
_base_ = './partialnet-t0_in1k.py'

model = dict(
    backbone=dict(
        dpconv=dict(
            budget=2.,  # T = sum_l C_l**2 / budget**2: ratio 1/4 on average
            theta=0.5,  # lower bound theta * T (0 = none)
            complexity_weight=0.01,
            ordering_weight=1.,
            warmup_epochs=0,  # epochs with the fixed 1/4 split first
            init_gate=1e-8)))

# No weight decay on the gates. The key names the DPConv parameter only
# ('.gate' would also match PAT_ch's gate module); it is merged with the
# base config's custom_keys.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'dpconv.gate': dict(decay_mult=0.)}))

custom_hooks = [
    dict(type='mmpartial.TrainResolutionHook', switch_epoch=280, size=224),
    dict(type='mmpartial.DPConvHook', interval=100),
]
