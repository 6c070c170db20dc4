import torch
import torch.nn as nn

from .builders import build_norm


def fuse_conv_bn(conv, bn):
    """Fold an eval-mode BN that follows ``conv`` into one biased Conv2d."""
    std = (bn.running_var + bn.eps).sqrt()
    scale = bn.weight / std
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                      conv.stride, conv.padding, conv.dilation, conv.groups,
                      bias=True).to(conv.weight.device, conv.weight.dtype)
    fused.weight.data.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(std)
    fused.bias.data.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


class ConvBN(nn.Sequential):
    """A bias-free convolution followed by a norm: the stem and the merging
    layers of PartialNet.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Kernel size, also used as stride (patchify).
        norm_cfg (dict): Config of the norm layer.
    """

    def __init__(self, in_channels, out_channels, kernel_size, norm_cfg=None):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                              stride=kernel_size, bias=False)
        self.bn = build_norm(norm_cfg, out_channels)
