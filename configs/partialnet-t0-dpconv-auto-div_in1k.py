# The reference code's own DPConv network, for reproducing its released
# experiments: its `auto_div` mode replaces the whole token mixer of every
# block (PAT_ch and PAT_sf) with a DPConv over all channels, no attention.
# As in the reference: random initial gates (+-1e-8), the group-convolution
# training form (weight * U) with a partial convolution at evaluation,
# nnz(U) against C**2 / budget**2 as the complexity, the multiplicative
# loss with theta = 0, weight decay on every parameter, the gates included.
# The paper's DPConv (the split of each PAT layer) is
# configs/partialnet-t0-dpconv_in1k.py.
_base_ = './partialnet-t0_in1k.py'

model = dict(
    backbone=dict(
        dpconv=dict(
            mode='auto_div',
            loss_form='multiplicative',
            budget=2.,
            theta=0.,
            alpha=0.01,
            ordering_weight=1.,
            init_gate=1e-8,
            init_split='random',
            train_form='group')))

custom_hooks = [
    dict(type='mmpartial.TrainResolutionHook', switch_epoch=280, size=224),
    dict(type='mmpartial.DPConvHook', interval=100),
]
