import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from .builders import build_norm
from .pat_dpconv import install_dpconv


class StylePoolGate(nn.Module):
    """Channel gate from per-channel style statistics (mean and std).

    The mean and the unbiased standard deviation of every channel over the
    H*W positions are stacked as a ``(B, C, 1, 2)`` tensor, mixed by a
    ``(1, 2)`` convolution, normalised and squashed by Hardsigmoid.

    Args:
        channels (int): Channels to gate.
        norm_cfg (dict): Config of the norm after the (1, 2) convolution.
    """

    def __init__(self, channels, norm_cfg=None):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, (1, 2), bias=False)
        self.norm = build_norm(norm_cfg, channels)
        self.act = nn.Hardsigmoid()

    def forward(self, x):
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


class PATChannel(nn.Module):
    """PAT_ch: partial convolution beside a partial channel attention.

    The first ``C // n_div`` channels go through a 3x3 convolution; the other
    channels are scaled by a :class:`StylePoolGate` and normalised. The two
    parts are concatenated back in that order.

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
    """

    def __init__(self, channels, n_div=4, norm_cfg=None, conv=None,
                 dpconv=None):
        super().__init__()
        self.conv_channels = channels // n_div
        self.attn_channels = channels - self.conv_channels
        conv = install_dpconv(self, channels, dpconv, conv)
        self.conv = conv if conv is not None else nn.Conv2d(
            self.conv_channels, self.conv_channels, 3, padding=1, bias=False)
        self.gate = StylePoolGate(self.attn_channels, norm_cfg)
        self.norm = build_norm(norm_cfg, self.attn_channels)

    def forward(self, x):
        if self.dpconv is not None:
            x = self.dpconv(x)
        x1, x2 = torch.split(x, [self.conv_channels, self.attn_channels], 1)
        x2 = self.norm(x2 * self.gate(x2))
        return torch.cat((self.conv(x1), x2), dim=1)
