# Ablation of the PAT layers on PartialNet-T2 (the paper's Table 4): PAT_ch,
# plus PAT_sp at the end of every MLP. Stage 4 still has PAT_ch blocks.
_base_ = './partialnet-t2_in1k.py'

model = dict(backbone=dict(use_pat_sp=True, use_pat_sf=False))
