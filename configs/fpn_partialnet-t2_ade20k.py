_base_ = './_base_/fpn_partialnet_ade20k_40k.py'

model = dict(
    backbone=dict(arch='t2'),
    neck=dict(in_channels=[64, 128, 256, 512]))
