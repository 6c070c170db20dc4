# Ablation of the PAT layers on PartialNet-T2 (the paper's Table 4): PAT_ch
# and PAT_sp, plus PAT_sf (self-attention) blocks in stage 4: every PAT
# layer. (The released T2 itself has no PAT_sp: partialnet-t2_in1k.py.)
_base_ = './partialnet-t2_in1k.py'

model = dict(backbone=dict(use_pat_sp=True, use_pat_sf=True))
