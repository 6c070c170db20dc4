# mmdet's ResNet-50 in the toy Mask R-CNN recipe of
# mask-rcnn_partialnet-t0_toy.py (the toy COCO set, its heads, schedule and
# optimiser), from random weights: the baseline of
# mask-rcnn_pat-resnet50_toy.py, which differs from it in the backbone only
# (docs/pat_resnet.md). No ImageNet weights are read, so every BN trains
# and no stage is frozen; the backbone learns at the heads' rate.
_base_ = './mask-rcnn_partialnet-t0_toy.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    neck=dict(in_channels=[256, 512, 1024, 2048]))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=dict(backbone=dict(lr_mult=1.0))))
