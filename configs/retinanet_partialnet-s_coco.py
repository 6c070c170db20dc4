_base_ = './_base_/retinanet_partialnet_fpn_1x_coco.py'

model = dict(
    backbone=dict(arch='s'),
    neck=dict(in_channels=[192, 384, 768]))
