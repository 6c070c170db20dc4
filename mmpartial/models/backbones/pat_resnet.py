import logging

import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import PretrainedInit
from torch.nn.modules.batchnorm import _BatchNorm

from mmpartial.registry import MODELS
from ..layers import PATChannel
from ..layers.builders import build_norm
from ..layers.conv_bn import ChannelAffine, norm_affine


class PATConv(PATChannel):
    """The 3x3 convolution of a ResNet block as a PAT_ch layer.

    The first ``in_channels // n_div`` channels go through a 3x3
    convolution, the others through PAT_ch's channel attention (see
    :class:`~mmpartial.models.layers.PATChannel`). Two things a ResNet's
    3x3 convolution does that a PAT_ch layer does not:

    - ``stride``: the attention part has no convolution to stride, so the
      whole input is average-pooled first (ResNet-D's parameter-free
      downsampling) and the 3x3 convolution runs at the output resolution,
      as a strided one would;
    - ``out_channels > in_channels`` (the first block of a BasicBlock
      stage): the attention channels pass on as they are, so the
      convolution makes the new ones: it maps ``in_channels // n_div`` to
      ``out_channels - (in_channels - in_channels // n_div)`` channels.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels, at least ``in_channels``.
        stride (int): Spatial stride. Defaults to 1.
        n_div (int): The convolution gets ``1 / n_div`` of the input.
        norm_cfg (dict): Config of PAT_ch's norms.
    """

    def __init__(self, in_channels, out_channels, stride=1, n_div=4,
                 norm_cfg=None):
        conv_in = in_channels // n_div
        conv_out = out_channels - (in_channels - conv_in)
        if conv_in < 1 or conv_out < 1:
            raise ValueError(f'PATConv({in_channels} -> {out_channels}, '
                             f'n_div={n_div}) leaves no channels to convolve')
        conv = nn.Conv2d(conv_in, conv_out, 3, padding=1, bias=False)
        super().__init__(in_channels, n_div, norm_cfg, conv=conv)
        self.out_channels = out_channels
        self.stride = stride
        # ceil_mode: the size a 3x3 convolution of stride s and padding 1
        # gives, also on odd maps.
        self.pool = nn.AvgPool2d(stride, stride, ceil_mode=True,
                                 count_include_pad=False) \
            if stride > 1 else nn.Identity()

    def forward(self, x):
        return super().forward(self.pool(x))


def fold_pat_norm(pat, bn):
    """Deploy ``pat`` and fold its norm after the gating into ``bn``, the
    norm that follows it; returns the :class:`ChannelAffine` replacing
    ``bn``. Eval-mode outputs are unchanged."""
    pat.switch_to_deploy()
    affine = ChannelAffine.from_norm(bn)
    if not isinstance(pat.norm, nn.Identity):
        # Two per-channel affines in a row are one: (x*s1 + t1)*s2 + t2.
        scale, shift = norm_affine(pat.norm)
        start = pat.out_channels - pat.attn_channels
        weight, bias = affine.weight.data, affine.bias.data
        outer = weight[start:].double()
        bias[start:] = (outer * shift + bias[start:].double()).to(bias)
        weight[start:] = (outer * scale).to(weight)
        pat.norm = nn.Identity()
    return affine


class BasicBlock(nn.Module):
    """Two 3x3 PATConvs (mmdet's BasicBlock, its convolutions partial)."""
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None,
                 style='pytorch', n_div=4, norm_cfg=None):
        super().__init__()
        self.conv1 = PATConv(inplanes, planes, stride, n_div, norm_cfg)
        self.bn1 = build_norm(norm_cfg, planes)
        self.conv2 = PATConv(planes, planes, 1, n_div, norm_cfg)
        self.bn2 = build_norm(norm_cfg, planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)

    def switch_to_deploy(self):
        self.bn1 = fold_pat_norm(self.conv1, self.bn1)
        self.bn2 = fold_pat_norm(self.conv2, self.bn2)


class Bottleneck(nn.Module):
    """1x1, 3x3 PATConv, 1x1 (mmdet's Bottleneck). ``style='pytorch'``
    strides in the PATConv, ``'caffe'`` in the first 1x1 convolution."""
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None,
                 style='pytorch', n_div=4, norm_cfg=None):
        super().__init__()
        conv1_stride, conv2_stride = (1, stride) if style == 'pytorch' \
            else (stride, 1)
        self.conv1 = nn.Conv2d(inplanes, planes, 1, conv1_stride,
                               bias=False)
        self.bn1 = build_norm(norm_cfg, planes)
        self.conv2 = PATConv(planes, planes, conv2_stride, n_div, norm_cfg)
        self.bn2 = build_norm(norm_cfg, planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1,
                               bias=False)
        self.bn3 = build_norm(norm_cfg, planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)

    def switch_to_deploy(self):
        self.bn2 = fold_pat_norm(self.conv2, self.bn2)


@MODELS.register_module()
class PATResNet(BaseModule):
    """ResNet whose every 3x3 block convolution is a PAT_ch layer.

    The "partial channel mechanism on a standard ResNet" of `Partial Channel
    Network <https://arxiv.org/abs/2502.01303>`_: mmdet's ResNet (v1.5,
    ``style='pytorch'``), each 3x3 convolution of its blocks replaced by a
    :class:`PATConv`. The arguments mean what mmdet's ResNet's do, and the
    parameter names are its own (``conv1``, ``bn1``, ``layer1``-``layer4``,
    blocks' ``conv1``-``conv3``, ``bn1``-``bn3``, ``downsample``), so a
    torchvision or mmdet ResNet checkpoint loads every tensor but the 3x3
    kernels (``init_cfg=dict(type='Pretrained', ...)``, reported as
    missing and unexpected keys).

    Args:
        depth (int): 18, 34, 50 or 101.
        in_channels (int): Input image channels. Defaults to 3.
        stem_channels (int): Stem width. Defaults to 64.
        base_channels (int): Width of the first stage's 3x3 convolutions.
            Defaults to 64.
        num_stages (int): Stages, 1-4. Defaults to 4.
        strides (Sequence[int]): Stride of every stage's first block.
        n_div (int): Every PATConv convolves ``1 / n_div`` of its input
            channels, as PAT_ch does. Defaults to 4.
        out_indices (Sequence[int]): Stages (from 0) to output.
            Defaults to (0, 1, 2, 3).
        style (str): ``'pytorch'`` or ``'caffe'`` (Bottleneck's stride on
            the 3x3 or on the first 1x1 convolution).
        frozen_stages (int): Freeze the stem (0) and stages 1 to
            ``frozen_stages``: no gradients, norms in eval mode; -1 freezes
            nothing. Defaults to -1.
        norm_cfg (dict): Norm config (``'BN'`` or ``'SyncBN'``).
        norm_eval (bool): Keep every BN in eval mode while training.
            Defaults to True, as mmdet's.
        with_cp (bool): Gradient checkpointing of every block.
        zero_init_residual (bool): Zero the last norm's weight of every
            block (randomly initialised models only). Defaults to True.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """
    arch_settings = {
        18: (BasicBlock, (2, 2, 2, 2)),
        34: (BasicBlock, (3, 4, 6, 3)),
        50: (Bottleneck, (3, 4, 6, 3)),
        101: (Bottleneck, (3, 4, 23, 3)),
    }
    default_init_cfg = [
        dict(type='Kaiming', layer='Conv2d'),
        dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
    ]

    def __init__(self, depth, in_channels=3, stem_channels=64,
                 base_channels=64, num_stages=4, strides=(1, 2, 2, 2),
                 n_div=4, out_indices=(0, 1, 2, 3), style='pytorch',
                 frozen_stages=-1, norm_cfg=dict(type='BN',
                                                 requires_grad=True),
                 norm_eval=True, with_cp=False, zero_init_residual=True,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg or self.default_init_cfg)
        if depth not in self.arch_settings:
            raise ValueError(f'invalid depth {depth!r} for PATResNet; valid '
                             f'depths are {sorted(self.arch_settings)}')
        if not 1 <= num_stages <= 4:
            raise ValueError(f'num_stages must be 1-4, got {num_stages}')
        if any(not 0 <= i < num_stages for i in out_indices):
            raise ValueError(f'out_indices {tuple(out_indices)} must be in '
                             f'[0, {num_stages})')
        if style not in ('pytorch', 'caffe'):
            raise ValueError(f"style must be 'pytorch' or 'caffe', got "
                             f'{style!r}')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], '
                             f'got {frozen_stages}')
        self.depth = depth
        self.block, stage_blocks = self.arch_settings[depth]
        self.stage_blocks = stage_blocks[:num_stages]
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.zero_init_residual = zero_init_residual
        self.deploy = False

        self.conv1 = nn.Conv2d(in_channels, stem_channels, 7, 2, 3,
                               bias=False)
        self.bn1 = build_norm(norm_cfg, stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = stem_channels
        self.res_layers = []
        for i, num_blocks in enumerate(self.stage_blocks):
            planes = base_channels * 2**i
            layer = self._make_layer(inplanes, planes, num_blocks,
                                     strides[i], style, n_div, norm_cfg)
            inplanes = planes * self.block.expansion
            self.add_module(f'layer{i + 1}', layer)
            self.res_layers.append(f'layer{i + 1}')
        self.feat_dim = inplanes
        self._freeze_stages()

    def _make_layer(self, inplanes, planes, num_blocks, stride, style, n_div,
                    norm_cfg):
        out = planes * self.block.expansion
        downsample = None
        if stride != 1 or inplanes != out:
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride, bias=False),
                build_norm(norm_cfg, out))
        blocks = [self.block(inplanes, planes, stride, downsample, style,
                             n_div, norm_cfg)]
        blocks += [self.block(out, planes, 1, None, style, n_div, norm_cfg)
                   for _ in range(1, num_blocks)]
        return nn.Sequential(*blocks)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i, name in enumerate(self.res_layers):
            for block in getattr(self, name):
                if self.with_cp and x.requires_grad:
                    x = cp.checkpoint(block, x, use_reentrant=False)
                else:
                    x = block(x)
            if i in self.out_indices:
                outs.append(x.contiguous())
        return tuple(outs)

    def _freeze_stages(self):
        modules = [self.conv1, self.bn1] if self.frozen_stages >= 0 else []
        modules += [getattr(self, f'layer{i}')
                    for i in range(1, self.frozen_stages + 1)]
        for module in modules:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def init_weights(self):
        cfg = self.init_cfg
        pretrained = isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'
        # A fresh initialisation first, also before a checkpoint: the 3x3
        # PATConvs and attention gates are not in a ResNet checkpoint.
        self.init_cfg = self.default_init_cfg if pretrained else cfg
        super().init_weights()
        self.init_cfg = cfg
        if self.zero_init_residual:
            last = 'bn3' if self.block is Bottleneck else 'bn2'
            for module in self.modules():
                if isinstance(module, self.block):
                    nn.init.zeros_(getattr(module, last).weight)
        if not pretrained:
            return
        if cfg.get('checkpoint') is None:
            print_log('PATResNet: init_cfg.checkpoint is None, so the '
                      'backbone starts from random weights', logger='current',
                      level=logging.WARNING)
            return
        # Non-strict: mmengine lists the keys that did not load (the 3x3
        # kernels, PAT_ch's gates and norms).
        PretrainedInit(checkpoint=cfg['checkpoint'], prefix=cfg.get('prefix'),
                       map_location=cfg.get('map_location', 'cpu'))(self)

    def switch_to_deploy(self):
        """Deploy every PATConv (its gate's BN folded into the gate's
        ``(1, 2)`` convolution, see :class:`PATChannel`) and fold its norm
        after the gating into the block's next BN, which becomes a
        per-channel affine. Eval-mode outputs are unchanged; calling it
        twice is harmless."""
        if self.deploy:
            return
        for name in self.res_layers:
            for block in getattr(self, name):
                block.switch_to_deploy()
        self.deploy = True

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self
