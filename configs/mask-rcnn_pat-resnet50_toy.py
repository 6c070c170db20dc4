# PAT-ResNet-50 (every 3x3 block convolution a PAT_ch layer) in the toy
# Mask R-CNN recipe: mask-rcnn_resnet50_toy.py with the backbone type
# swapped; PATResNet takes mmdet ResNet's arguments, so the baseline's
# depth, stages, norms and init carry over (docs/pat_resnet.md).
_base_ = './mask-rcnn_resnet50_toy.py'

model = dict(backbone=dict(type='mmpartial.PATResNet'))
