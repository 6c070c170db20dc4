_base_ = './_base_/mask-rcnn_partialnet_fpn_1x_coco.py'

model = dict(
    backbone=dict(arch='t0'),
    neck=dict(in_channels=[32, 64, 128, 256]))
