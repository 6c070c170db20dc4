_base_ = './_base_/retinanet_partialnet_fpn_1x_coco.py'

model = dict(
    backbone=dict(arch='t2'),
    neck=dict(in_channels=[128, 256, 512]))
