_base_ = './_base_/mask-rcnn_partialnet_fpn_1x_coco.py'

model = dict(
    backbone=dict(arch='m'),
    neck=dict(in_channels=[128, 256, 512, 1024]))

# The reference's config of M trains with half the learning rate, as L.
optim_wrapper = dict(optimizer=dict(lr=1e-4))
