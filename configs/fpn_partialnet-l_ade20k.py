_base_ = './_base_/fpn_partialnet_ade20k_40k.py'

model = dict(
    backbone=dict(arch='l'),
    neck=dict(in_channels=[160, 320, 640, 1280]))
