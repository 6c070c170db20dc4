_base_ = './_base_/fpn_partialnet_ade20k_40k.py'

model = dict(
    backbone=dict(arch='s'),
    neck=dict(in_channels=[96, 192, 384, 768]))
