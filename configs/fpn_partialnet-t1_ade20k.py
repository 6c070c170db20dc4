_base_ = './_base_/fpn_partialnet_ade20k_40k.py'

model = dict(
    backbone=dict(arch='t1'),
    neck=dict(in_channels=[48, 96, 192, 384]))
