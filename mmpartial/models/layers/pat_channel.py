import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from .builders import build_norm
from .conv_bn import conv_to_linear, fold_output_affine, norm_affine
from .deploy_ops import cat_channels, functional, nchw, nhwc
from .pat_dpconv import install_dpconv


class StylePoolGate(nn.Module):
    """Channel gate from per-channel style statistics (mean and std).

    The mean and the unbiased standard deviation of every channel over the
    H*W positions are stacked as a ``(B, C, 1, 2)`` tensor, mixed by a
    ``(1, 2)`` convolution, normalised and squashed by Hardsigmoid.

    Args:
        channels (int): Channels to gate.
        norm_cfg (dict): Config of the norm after the (1, 2) convolution.
        deploy (bool): Build the inference form: the norm folded into a
            biased convolution (see :meth:`switch_to_deploy`). Defaults to
            False.
    """

    def __init__(self, channels, norm_cfg=None, deploy=False):
        super().__init__()
        self.deploy = deploy
        # Deploy form: the (1, 2) kernel as a Linear over (channel, stat).
        self.conv = nn.Linear(2 * channels, channels) if deploy else \
            nn.Conv2d(channels, channels, (1, 2), bias=False)
        self.norm = nn.Identity() if deploy else build_norm(norm_cfg,
                                                            channels)
        self.act = nn.Hardsigmoid()

    def forward(self, x):
        if self.deploy:
            return self.forward_nhwc(nhwc(x))[:, :, None, None]
        flat = x.flatten(2)
        # The unbiased std (torch's default) is undefined on a single
        # position; fall back to the biased one there instead of NaN.
        correction = 1 if flat.shape[-1] > 1 else 0
        std, mean = torch.std_mean(flat, dim=-1, correction=correction)
        style = self.conv(torch.stack((mean, std), dim=-1).unsqueeze(2))
        return self.act(self.normalize(style))

    def normalize(self, style):
        # The style vector has one value per channel and sample, so a
        # training batch of one image (common in detection) gives BN nothing
        # to estimate statistics from; use the running ones then. A SyncBN
        # across several processes still sees several values.
        norm = self.norm
        synced = isinstance(norm, nn.SyncBatchNorm) and \
            dist.is_available() and dist.is_initialized() and \
            dist.get_world_size() > 1
        if self.training and style.shape[0] == 1 and not synced:
            return F.batch_norm(style, norm.running_mean, norm.running_var,
                                norm.weight, norm.bias, False, 0., norm.eps)
        return norm(style)

    @staticmethod
    def style_nhwc(t):
        """Per-channel mean and std (unbiased; biased on one position) of
        NHWC ``t``, as two ``(B, C)`` tensors.

        Two passes (the mean, then the norm of the deviations) rather than
        ``torch.std_mean``, whose one-pass Welford kernel is several times
        slower on CPU; both are exact to rounding.
        """
        positions = t.shape[1] * t.shape[2]
        mean = t.mean((1, 2))
        deviation = t - mean.view(mean.shape[0], 1, 1, mean.shape[1])
        if functional(deviation):
            squares = (deviation * deviation).sum((1, 2))
            if isinstance(positions, torch.Tensor):  # a traced size
                return mean, (squares /
                              (positions - 1).clamp(min=1).float()).sqrt()
            return mean, (squares / max(positions - 1, 1)).sqrt()
        # A plain sum over positions (channels innermost) is several times
        # faster than linalg.vector_norm over these dimensions.
        squares = deviation.square_().sum((1, 2))
        return mean, squares.div_(max(positions - 1, 1)).sqrt_()

    def forward_nhwc(self, t):
        """Deploy form: the gate of NHWC ``t`` as ``(B, C)`` factors."""
        mean, std = self.style_nhwc(t)
        # The (1, 2) kernel reads (mean, std) of every input channel: as a
        # matrix, columns in the order (channel, statistic).
        return self.act(self.conv(torch.stack((mean, std), dim=-1).flatten(1)))

    def switch_to_deploy(self):
        """Fold the norm into the ``(1, 2)`` convolution, which gets a bias
        and becomes the equal ``nn.Linear`` over the flattened ``(C, 1, 2)``
        statistics. Eval-mode outputs are unchanged."""
        if self.deploy:
            return
        fold_output_affine(self.conv, *norm_affine(self.norm))
        self.conv = conv_to_linear(self.conv)
        self.norm = nn.Identity()
        self.deploy = True


class PATChannel(nn.Module):
    """PAT_ch: partial convolution beside a partial channel attention.

    The first ``C // n_div`` channels go through a 3x3 convolution; the other
    channels are scaled by a :class:`StylePoolGate` and normalised. The two
    parts are concatenated back in that order.

    In deploy form the gate's norm is folded into its convolution; the norm
    after the gating stays until the enclosing block folds it into the
    MLP's first convolution (``PartialBlock.switch_to_deploy``), and is an
    identity in a model built with ``deploy=True``.

    Args:
        channels (int): Input and output channels.
        n_div (int): The convolution gets ``channels // n_div`` channels.
        norm_cfg (dict): Config of the norm layers.
        conv (nn.Module, optional): A replacement for the 3x3 convolution
            over the first part; it must map ``channels // n_div`` channels
            to as many.
        dpconv (nn.Module, optional): A DPConv over all ``channels``, run
            on the input before the split; the first part is then taken as
            it is (``conv`` is an identity). See
            :mod:`~mmpartial.models.layers.pat_dpconv`.
        deploy (bool): Build the inference form of the enclosing block: the
            gate folded, no norm after the gating. Defaults to False.
    """

    def __init__(self, channels, n_div=4, norm_cfg=None, conv=None,
                 dpconv=None, deploy=False):
        super().__init__()
        self.deploy = deploy
        self.conv_channels = channels // n_div
        self.attn_channels = channels - self.conv_channels
        conv = install_dpconv(self, channels, dpconv, conv)
        self.conv = conv if conv is not None else nn.Conv2d(
            self.conv_channels, self.conv_channels, 3, padding=1, bias=False)
        self.gate = StylePoolGate(self.attn_channels, norm_cfg, deploy)
        self.norm = nn.Identity() if deploy else build_norm(
            norm_cfg, self.attn_channels)

    def forward(self, x):
        if self.deploy:
            return nchw(self.forward_nhwc(nhwc(x)))
        if self.dpconv is not None:
            x = self.dpconv(x)
        x1, x2 = torch.split(x, [self.conv_channels, self.attn_channels], 1)
        x2 = self.norm(x2 * self.gate(x2))
        return torch.cat((self.conv(x1), x2), dim=1)

    def forward_nhwc(self, t):
        """Deploy form on NHWC ``t``; returns a contiguous NHWC tensor."""
        x = nchw(t)
        if self.dpconv is not None:
            x = self.dpconv(x)
            t = nhwc(x)
        c1 = self.conv_channels
        first = nhwc(self.conv(x[:, :c1]))
        second = t[..., c1:]
        gate = self.gate.forward_nhwc(second)
        if isinstance(self.norm, nn.Identity):
            return cat_channels(first, second, gate)
        # Deployed on its own: the norm has not been folded away.
        second = nhwc(self.norm(nchw(second * gate[:, None, None, :])))
        return cat_channels(first, second)

    def switch_to_deploy(self):
        """Fold what this layer can fold on its own (the gate's norm; a
        DPConv becomes a partial convolution). The norm after the gating is
        left for the enclosing block to fold."""
        if self.deploy:
            return
        if self.dpconv is not None:
            self.dpconv.switch_to_deploy()
        self.gate.switch_to_deploy()
        self.deploy = True
