# PAT-ResNet-50 (every 3x3 block convolution a PAT_ch layer) in the toy
# Mask R-CNN recipe: mask-rcnn_resnet50_toy.py with the backbone swapped
# (docs/pat_resnet.md).
_base_ = './mask-rcnn_resnet50_toy.py'

model = dict(
    backbone=dict(
        _delete_=True,  # the same arguments as the ResNet-50 baseline
        type='mmpartial.PATResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None))
