_base_ = './_base_/fpn_partialnet_ade20k_40k.py'

model = dict(
    backbone=dict(arch='t0'),
    neck=dict(in_channels=[32, 64, 128, 256]))
