# Ablation of the PAT layers on PartialNet-T2 (the paper's Table 4): PAT_ch
# only. Every block, stage 4 included, is a PAT_ch block (v1); no PAT_sp.
_base_ = './partialnet-t2_in1k.py'

model = dict(backbone=dict(use_pat_sp=False, use_pat_sf=False))
