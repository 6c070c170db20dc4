_base_ = './_base_/cascade-mask-rcnn_partialnet_fpn_ms-3x_coco.py'

model = dict(
    backbone=dict(arch='s'),
    neck=dict(in_channels=[96, 192, 384, 768]))
