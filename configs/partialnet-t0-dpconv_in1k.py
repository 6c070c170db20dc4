# PartialNet-T0 with DPConv (spec, "DPConv"): every PAT layer learns its
# split, the convolution taking the first r*C channels and the attention
# (PAT_ch's channel attention, PAT_sf's self-attention) the rest, starting
# at the fixed 1/4. The complexity term (the reference's multiplicative
# form: task losses times (T / R)**alpha, R and T in MACs of both
# branches), the ordering term, the warm-up and the ratio logs
# (dpconv_mean_ratio, dpconv_budget_usage, dpconv_loss_factor) come from
# DPConvHook, which reads the options below from the backbone.
_base_ = './partialnet-t0_in1k.py'

model = dict(
    backbone=dict(
        dpconv=dict(
            mode='split',
            loss_form='multiplicative',
            budget=2.,  # T = the cost at the split 1 / budget**2 (1/4)
            theta=0.,  # lower bound theta * T off, as the reference
            alpha=0.01,
            ordering_weight=1.,
            warmup_epochs=0,  # epochs with the fixed 1/4 split first
            init_gate=1e-8)))

# No weight decay on the gates (decay never flips a gate but pulls it to
# the flip point). The key names the DPConv parameter only ('.gate' would
# also match PAT_ch's gate modules).
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'dpconv.gate': dict(decay_mult=0.)}))

custom_hooks = [
    dict(type='mmpartial.TrainResolutionHook', switch_epoch=280, size=224),
    dict(type='mmpartial.DPConvHook', interval=100),
]
