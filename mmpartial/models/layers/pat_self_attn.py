import torch
import torch.nn as nn

from .irpe import EuclideanRelPosBias
from .pat_dpconv import install_dpconv


class RelPosSelfAttention(nn.Module):
    """Multi-head self-attention over all positions with an iRPE bias.

    Args:
        dim (int): Token dimension.
        num_heads (int): Number of heads.
        attn_drop (float): Dropout on the attention map.
        proj_drop (float): Dropout after the output projection.
    """

    def __init__(self, dim, num_heads=4, attn_drop=0.1, proj_drop=0.1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'attention dim {dim} is not divisible by '
                             f'num_heads={num_heads}')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.rel_pos = EuclideanRelPosBias(num_heads)

    def forward(self, x, height, width):
        """x: ``(B, N, dim)`` tokens of an ``height x width`` map."""
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = (attn + self.rel_pos(height, width)).softmax(dim=-1)
        out = self.attn_drop(attn) @ v
        out = out.transpose(1, 2).reshape(b, n, -1)
        return self.proj_drop(self.proj(out))


class PATSelfAttention(nn.Module):
    """PAT_sf: partial convolution beside a partial self-attention.

    The first ``C // n_div`` channels go through a 3x3 convolution; the
    others are layer-normalised per position and attend over all positions
    (:class:`RelPosSelfAttention`). Used in the last stage, where the map is
    small enough for global attention.

    Args:
        channels (int): Input and output channels.
        n_div (int): The convolution gets ``channels // n_div`` channels.
        num_heads (int): Attention heads.
        attn_drop (float): Dropout on the attention map.
        proj_drop (float): Dropout after the attention projection.
        conv (nn.Module, optional): A replacement for the 3x3 convolution.
        dpconv (nn.Module, optional): A DPConv over all ``channels``, run
            on the input before the split; the first part is then taken as
            it is (``conv`` is an identity). See
            :mod:`~mmpartial.models.layers.pat_dpconv`.
    """

    def __init__(self, channels, n_div=4, num_heads=4, attn_drop=0.1,
                 proj_drop=0.1, conv=None, dpconv=None):
        super().__init__()
        self.conv_channels = channels // n_div
        self.attn_channels = channels - self.conv_channels
        conv = install_dpconv(self, channels, dpconv, conv)
        self.conv = conv if conv is not None else nn.Conv2d(
            self.conv_channels, self.conv_channels, 3, padding=1, bias=False)
        self.norm = nn.LayerNorm(self.attn_channels, eps=1e-6)
        self.attn = RelPosSelfAttention(self.attn_channels, num_heads,
                                        attn_drop, proj_drop)

    def forward(self, x):
        if self.dpconv is not None:
            x = self.dpconv(x)
        x1, x2 = torch.split(x, [self.conv_channels, self.attn_channels], 1)
        b, c, h, w = x2.shape
        tokens = self.norm(x2.flatten(2).transpose(1, 2))
        x2 = self.attn(tokens, h, w).transpose(1, 2).reshape(b, c, h, w)
        return torch.cat((self.conv(x1), x2), dim=1)
