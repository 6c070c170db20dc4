"""The layer profile (``--layers C H [W]``, the paper's Table 6): single
token mixers and whole blocks at one stage's shape, each a target of its
own, so that the benchmark times them as it times models (forms,
backends, dtypes, interleaved rounds).

Every layer is the project's own class where one exists. The blocks are
:class:`~mmpartial.models.layers.PartialBlock` (``x + MLP(mixer(x))``)
with the mixer in question; the convolution blocks have a plain
convolution as their mixer (no channel attention), the nearest honest
equivalent of a ConvNet, DWConv or FasterNet block with PartialNet's MLP.
"""
from typing import Callable, NamedTuple

import torch
import torch.nn as nn

from mmpartial.models.layers import (PartialAttnBlock, PartialBlock,
                                     PATChannel, PATSelfAttention, PATSpatial)
from .targets import BenchmarkTarget

# PartialNet's defaults: 1/4 of the channels convolved, 4 heads in PAT_sf,
# MLP ratio 2 with BN and GELU (T0's and T1's; T2 and larger use ReLU).
N_DIV, NUM_HEADS = 4, 4
NORM = dict(type='BN')
BLOCK = dict(mlp_ratio=2., act_cfg=dict(type='GELU'), norm_cfg=NORM)


def _conv3x3(channels, groups=1):
    return nn.Conv2d(channels, channels, 3, padding=1, groups=groups,
                     bias=False)


def _conv_block(channels, conv=None):
    """A block whose mixer convolves all channels (``n_div=1``): PAT_ch
    without attention is then just ``conv``."""
    return PartialBlock(channels, n_div=1, channel_attn=False,
                        conv=conv or _conv3x3(channels), **BLOCK)


class LayerKind(NamedTuple):
    """One kind of layer: how to build it for ``channels`` and which
    channel counts it takes."""
    build: Callable[[int], nn.Module]
    description: str
    #: The channels must be a multiple of this ...
    multiple: int = 1
    #: ... because of this split.
    why: str = ''


QUARTER = '1/4 convolved'
HEADS = f'1/4 convolved, 3/4 over {NUM_HEADS} heads'
LAYER_KINDS = {
    'conv3x3': LayerKind(_conv3x3, 'Conv 3x3 over all channels'),
    'dwconv3x3': LayerKind(lambda c: _conv3x3(c, groups=c),
                           'depthwise Conv 3x3'),
    'pconv': LayerKind(
        lambda c: PATChannel(c, N_DIV, NORM, channel_attn=False),
        "FasterNet's PConv: Conv 3x3 over 1/4, the rest passed through "
        '(PATChannel, channel_attn=False)', N_DIV, QUARTER),
    'pat_ch': LayerKind(
        lambda c: PATChannel(c, N_DIV, NORM),
        'PAT_ch: PConv beside the channel attention (PATChannel)', N_DIV,
        QUARTER),
    'pat_sp': LayerKind(
        lambda c: PATSpatial(c, NORM),
        'PAT_sp: spatial gate beside a 1x1 conv (PATSpatial)', 2,
        'split in halves'),
    'pat_sf': LayerKind(
        lambda c: PATSelfAttention(c, N_DIV, NUM_HEADS),
        'PAT_sf: PConv beside self-attention (PATSelfAttention)',
        4 * N_DIV, HEADS),
    'conv3x3_block': LayerKind(_conv_block,
                               'PartialBlock, Conv 3x3 mixer, plain MLP'),
    'dwconv3x3_block': LayerKind(
        lambda c: _conv_block(c, _conv3x3(c, groups=c)),
        'PartialBlock, DWConv 3x3 mixer, plain MLP'),
    'pconv_block': LayerKind(
        lambda c: PartialBlock(c, N_DIV, channel_attn=False, **BLOCK),
        'FasterNet block: PartialBlock, PConv mixer, plain MLP', N_DIV,
        QUARTER),
    'pat_ch_block': LayerKind(
        lambda c: PartialBlock(c, N_DIV, **BLOCK),
        'PartialBlock: PAT_ch, plain MLP (T2-L stages 1-3)', N_DIV, QUARTER),
    'pat_ch_sp_block': LayerKind(
        lambda c: PartialBlock(c, N_DIV, use_pat_sp=True, **BLOCK),
        'PartialBlock: PAT_ch, MLP ending in PAT_sp (T0/T1 stages 1-3)',
        N_DIV, QUARTER),
    'pat_sf_block': LayerKind(
        lambda c: PartialAttnBlock(c, N_DIV, num_heads=NUM_HEADS, **BLOCK),
        'PartialAttnBlock: PAT_sf, plain MLP (T2-L stage 4)', 4 * N_DIV,
        HEADS),
}


def layer_shape(layers):
    """``(channels, height, width)`` of ``--layers C H [W]``."""
    channels, height, *width = layers
    return channels, height, width[0] if width else height


def layer_problem(layers, kinds=None):
    """Why ``--layers`` (with ``--layer-kinds``) cannot be built, or None:
    one line naming the layer, the shape and what would fit."""
    if len(layers) not in (2, 3) or min(layers) < 1:
        return f'--layers takes C H [W], positive integers; got {layers}'
    channels, height, width = layer_shape(layers)
    for kind in kinds or LAYER_KINDS:
        multiple, why = LAYER_KINDS[kind].multiple, LAYER_KINDS[kind].why
        if channels % multiple:
            below = channels // multiple * multiple
            fits = ' or '.join(str(c) for c in (below, below + multiple)
                               if c > 0)
            return (f'--layers {channels} {height} {width}: {kind} needs '
                    f'channels divisible by {multiple} ({why}); {fits} '
                    'would fit, or leave it out with --layer-kinds')
    return None


class LayerTarget(BenchmarkTarget):
    """One layer or block at a stage's shape: ``(B, C, H, W)`` random
    activations in, the same shape out. Its train-step loss is the mean
    square of the output, summed over the batch."""
    mac_scope = 'the layer'
    train_loss = 'features'

    def __init__(self, name, model, description, channels):
        super().__init__(name, model, description)
        self.channels = channels
        if not callable(getattr(model, 'switch_to_deploy', None)):
            self.deploy_problem = 'a plain convolution: nothing to fold, ' \
                'its train form is its deploy form'

    def make_inputs(self, batch, img_size, device, dtype=torch.float32,
                    channels_last=False):
        memory_format = torch.channels_last if channels_last \
            else torch.contiguous_format
        x = torch.randn(batch, self.channels, *img_size, device=device,
                        dtype=self._storage_dtype(dtype))
        return (x.contiguous(memory_format=memory_format), )


def build_layer_targets(layers, kinds=None):
    """The targets of ``--layers`` (checked by :func:`layer_problem`), in
    :data:`LAYER_KINDS`' order, initialised as PartialNet initialises its
    weights and in eval mode."""
    channels = layer_shape(layers)[0]
    targets = []
    for kind, layer in LAYER_KINDS.items():
        if kinds and kind not in kinds:
            continue
        torch.manual_seed(0)
        model = layer.build(channels)
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        targets.append(LayerTarget(kind, model.eval(), layer.description,
                                   channels))
    return targets
