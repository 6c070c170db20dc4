# Mask R-CNN with PAT-ResNet-50 (every 3x3 block convolution a PAT_ch layer;
# docs/pat_resnet.md): mask-rcnn_resnet50_coco.py with the backbone swapped.
_base_ = './mask-rcnn_resnet50_coco.py'

model = dict(
    backbone=dict(
        _delete_=True,  # the same arguments as mmdet's ResNet-50
        type='mmpartial.PATResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        # No ImageNet PAT-ResNet-50 ships: set checkpoint to one trained
        # with pat-resnet50_in1k.py (prefix 'backbone.'). A torchvision
        # ResNet-50 loads too, all but its 3x3 kernels; None starts from
        # random weights.
        init_cfg=dict(type='Pretrained', checkpoint=None,
                      prefix='backbone.')))
