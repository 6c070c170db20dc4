# The paper's "partial channel mechanism on a standard ResNet-50": every 3x3
# convolution of the blocks a PAT_ch layer (a 3x3 convolution on 1/4 of the
# channels, the channel attention on the rest; docs/pat_resnet.md).
# Everything else is resnet50_in1k.py, mmpretrain's ResNet-50 recipe.
_base_ = './resnet50_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,  # the same arguments as mmpretrain's ResNet-50
        type='mmpartial.PATResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch',
        norm_eval=False))  # mmpretrain's default (mmdet's is True)
