_base_ = './_base_/fpn_partialnet_ade20k_40k.py'

model = dict(
    backbone=dict(arch='m'),
    neck=dict(in_channels=[128, 256, 512, 1024]))
