"""Convolution + norm, and the linear algebra of folding norms away.

The deploy form of PartialNet (``switch_to_deploy``) merges every
inference-time affine map into a neighbouring convolution or linear layer.
The helpers here do the arithmetic once, in float64, and write the result
back in the layer's dtype, so that folding many layers does not add up
float32 rounding.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .builders import build_norm
from .deploy_ops import exporting_onnx


def norm_affine(norm):
    """The per-channel ``(scale, shift)`` of an eval-mode norm layer.

    Args:
        norm (nn.Module): A BatchNorm (its running statistics are used, as
            in eval mode) or a LayerNorm (only its elementwise affine: the
            normalisation itself depends on the input and stays).

    Returns:
        tuple[Tensor, Tensor]: float64 ``scale`` and ``shift`` with
        ``norm(x) == x * scale + shift`` per channel (for a LayerNorm: of the
        normalised ``x``).
    """
    if isinstance(norm, nn.LayerNorm):
        if not norm.elementwise_affine:
            raise ValueError('this LayerNorm has no affine to fold')
        scale = norm.weight.detach().double()
        shift = norm.bias.detach().double() if norm.bias is not None \
            else torch.zeros_like(scale)
        return scale, shift
    if not isinstance(norm, nn.modules.batchnorm._BatchNorm) or \
            norm.running_mean is None:
        raise TypeError(f'cannot fold {type(norm).__name__}: only BatchNorm '
                        'layers with running statistics and LayerNorm '
                        'affines are folded')
    scale = (norm.running_var.double() + norm.eps).rsqrt()
    if norm.weight is not None:
        scale = scale * norm.weight.detach().double()
    shift = -norm.running_mean.double() * scale
    if norm.bias is not None:
        shift = shift + norm.bias.detach().double()
    return scale, shift


def _weight_bias(layer):
    """float64 copies of a Conv2d's or Linear's weight and (zero) bias."""
    weight = layer.weight.detach().double()
    bias = layer.bias.detach().double() if layer.bias is not None else \
        weight.new_zeros(weight.shape[0])
    return weight, bias


def _store(layer, weight, bias):
    """Write float64 ``weight`` and ``bias`` into ``layer``.

    ``layer`` gets a bias parameter if it had none, on the weight's device
    and in its dtype.
    """
    ref = layer.weight
    if layer.bias is None:
        layer.bias = nn.Parameter(ref.new_zeros(ref.shape[0]),
                                  requires_grad=ref.requires_grad)
    with torch.no_grad():
        layer.weight.copy_(weight.to(ref.dtype))
        layer.bias.copy_(bias.to(ref.dtype))


@torch.no_grad()
def fold_output_affine(layer, scale, shift):
    """Fold ``y -> y * scale + shift`` on the outputs of ``layer`` into it.

    Args:
        layer (nn.Conv2d | nn.Linear): The layer, changed in place (it gets
            a bias if it had none).
        scale (Tensor): One factor per output channel.
        shift (Tensor): One offset per output channel.
    """
    weight, bias = _weight_bias(layer)
    view = (-1, ) + (1, ) * (weight.dim() - 1)
    _store(layer, weight * scale.reshape(view), bias * scale + shift)


@torch.no_grad()
def fold_input_affine(layer, scale, shift, start=0):
    """Fold ``x -> x * scale + shift`` on input channels of ``layer`` in.

    ``layer`` must act on every position separately (a 1x1 convolution
    without padding, or a Linear), so that the shift is the same at every
    position and becomes a bias.

    Args:
        layer (nn.Conv2d | nn.Linear): The layer, changed in place (it gets
            a bias if it had none).
        scale (Tensor): One factor per affected input channel.
        shift (Tensor): One offset per affected input channel.
        start (int): The first affected input channel; the
            ``len(scale)`` channels from there are. Defaults to 0.
    """
    if isinstance(layer, nn.Conv2d) and (
            layer.kernel_size != (1, 1) or layer.groups != 1):
        raise ValueError('an input affine folds into a dense 1x1 '
                         'convolution only, got '
                         f'kernel_size={layer.kernel_size}, '
                         f'groups={layer.groups}')
    weight, bias = _weight_bias(layer)
    end = start + scale.numel()
    part = weight[:, start:end].flatten(1)  # (out, in) for 1x1 or Linear
    bias = bias + part @ shift
    weight[:, start:end] *= scale.reshape((-1, ) + (1, ) *
                                          (weight.dim() - 2))
    _store(layer, weight, bias)


@torch.no_grad()
def merge_linear_rows(first, second, start=0):
    """Merge a 1x1 layer ``second`` that reads output rows of ``first``.

    ``second`` maps the output channels ``start : start + in`` of ``first``
    (``in`` its input channels, as many as its outputs) to as many new
    channels; afterwards ``first`` computes them directly in those rows.

    Args:
        first (nn.Conv2d | nn.Linear): A position-wise layer, changed in
            place (it gets a bias if it had none).
        second (nn.Conv2d | nn.Linear): A position-wise square layer.
        start (int): The first output row of ``first`` that ``second``
            reads. Defaults to 0.
    """
    weight, bias = _weight_bias(first)
    mix, mix_bias = _weight_bias(second)
    mix = mix.flatten(1)
    end = start + mix.shape[1]
    if mix.shape[0] != mix.shape[1]:
        raise ValueError(f'only a square layer merges into rows, got '
                         f'{tuple(mix.shape)}')
    rows = weight[start:end]
    weight[start:end] = (mix @ rows.flatten(1)).reshape(rows.shape)
    bias[start:end] = mix @ bias[start:end] + mix_bias
    _store(first, weight, bias)


@torch.no_grad()
def conv_to_linear(conv):
    """The ``nn.Linear`` equal to ``conv`` on inputs of its kernel's size.

    For a 1x1 kernel that is the convolution at every position, applied to
    channels-last tokens; for a larger kernel (the ``(1, 2)`` style
    convolution) the input is flattened in ``(channel, row, column)`` order.

    Args:
        conv (nn.Conv2d): A dense (``groups=1``) convolution.

    Returns:
        nn.Linear: On the convolution's device and dtype, with a bias iff it
        has one.
    """
    if conv.groups != 1:
        raise ValueError(f'only a dense convolution is a Linear, got '
                         f'groups={conv.groups}')
    weight = conv.weight.flatten(1)
    linear = nn.Linear(weight.shape[1], weight.shape[0],
                       bias=conv.bias is not None).to(weight.device,
                                                      weight.dtype)
    linear.weight.copy_(weight)
    if conv.bias is not None:
        linear.bias.copy_(conv.bias)
    linear.weight.requires_grad_(conv.weight.requires_grad)
    return linear


class ChannelAffine(nn.Module):
    """``x * weight + bias`` per channel: an eval-mode norm, folded.

    Args:
        num_channels (int): Channels (dimension 1 of the input).
    """

    def __init__(self, num_channels):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    @classmethod
    def from_norm(cls, norm):
        """The affine equal to eval-mode ``norm`` (see :func:`norm_affine`).
        """
        scale, shift = norm_affine(norm)
        ref = norm.running_mean
        affine = cls(scale.numel()).to(ref.device, ref.dtype)
        with torch.no_grad():
            affine.weight.copy_(scale)
            affine.bias.copy_(shift)
        return affine

    def forward(self, x):
        if exporting_onnx():
            # In a graph one BatchNormalization node (zero mean, unit
            # variance, no epsilon: exactly x * weight + bias), a single
            # pass over x where a Mul and an Add are two; in PyTorch
            # addcmul is the faster kernel.
            ones = self.weight.new_ones(self.weight.shape)
            return F.batch_norm(x, ones - 1, ones, self.weight, self.bias,
                                False, 0., 0.)
        view = (-1, ) + (1, ) * (x.dim() - 2)
        return torch.addcmul(self.bias.view(view), x, self.weight.view(view))

    def extra_repr(self):
        return str(self.weight.numel())


class ConvBN(nn.Sequential):
    """A bias-free convolution followed by a norm: the stem and the merging
    layers of PartialNet.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Kernel size, also used as stride (patchify).
        norm_cfg (dict): Config of the norm layer.
        deploy (bool): Build the inference form: one biased convolution,
            ``bn`` an identity (see :meth:`switch_to_deploy`). Defaults to
            False.
    """

    def __init__(self, in_channels, out_channels, kernel_size, norm_cfg=None,
                 deploy=False):
        super().__init__()
        self.deploy = deploy
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                              stride=kernel_size, bias=deploy)
        self.bn = nn.Identity() if deploy else build_norm(norm_cfg,
                                                          out_channels)

    def switch_to_deploy(self):
        """Fold ``bn`` into ``conv`` (which gets a bias); ``bn`` becomes an
        identity. Eval-mode outputs are unchanged."""
        if self.deploy:
            return
        fold_output_affine(self.conv, *norm_affine(self.bn))
        self.bn = nn.Identity()
        self.deploy = True
