_base_ = './_base_/retinanet_partialnet_fpn_1x_coco.py'

model = dict(
    backbone=dict(arch='m'),
    neck=dict(in_channels=[256, 512, 1024]))
