_base_ = './_base_/cascade-mask-rcnn_partialnet_fpn_ms-3x_coco.py'

model = dict(
    backbone=dict(arch='t0'),
    neck=dict(in_channels=[32, 64, 128, 256]))
