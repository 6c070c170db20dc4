_base_ = './_base_/retinanet_partialnet_fpn_1x_coco.py'

model = dict(
    backbone=dict(arch='t0'),
    neck=dict(in_channels=[64, 128, 256]))
