# Ablation of the PAT layers on PartialNet-T2 (the paper's Table 4), row 0:
# FasterNet's plain partial convolution in every block (the reference's
# use_channel_attn=False: the convolved quarter beside an identity), no
# PAT_sp, no PAT_sf. The recipe is T2's.
_base_ = './partialnet-t2_in1k.py'

model = dict(
    backbone=dict(use_channel_attn=False, use_pat_sp=False,
                  use_pat_sf=False))
