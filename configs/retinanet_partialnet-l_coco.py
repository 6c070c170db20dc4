_base_ = './_base_/retinanet_partialnet_fpn_1x_coco.py'

model = dict(
    backbone=dict(arch='l'),
    neck=dict(in_channels=[320, 640, 1280]))
