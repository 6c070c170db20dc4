_base_ = './_base_/cascade-mask-rcnn_partialnet_fpn_ms-3x_coco.py'

model = dict(
    backbone=dict(arch='l'),
    neck=dict(in_channels=[160, 320, 640, 1280]))

# M and L train with half the learning rate, as their Mask R-CNN configs.
optim_wrapper = dict(optimizer=dict(lr=1e-4))
