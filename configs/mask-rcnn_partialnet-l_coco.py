_base_ = './_base_/mask-rcnn_partialnet_fpn_1x_coco.py'

model = dict(
    backbone=dict(arch='l'),
    neck=dict(in_channels=[160, 320, 640, 1280]))

# The largest variant trains with half the learning rate.
optim_wrapper = dict(optimizer=dict(lr=1e-4))
