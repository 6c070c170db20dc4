import torch
import torch.nn as nn

from .conv_bn import fold_input_affine, norm_affine
from .deploy_ops import add_cat_channels, functional, nchw, nhwc
from .irpe import EuclideanRelPosBias
from .pat_dpconv import install_dpconv


class RelPosSelfAttention(nn.Module):
    """Multi-head self-attention over all positions with an iRPE bias.

    In deploy form the dropouts are identities and the relative-position
    bias is gathered once per shape (cached).

    Args:
        dim (int): Token dimension.
        num_heads (int): Number of heads.
        attn_drop (float): Dropout on the attention map.
        proj_drop (float): Dropout after the output projection.
        deploy (bool): Build the inference form: ``qkv`` with a bias (where
            :class:`PATSelfAttention` folds its LayerNorm's affine), no
            dropout. Defaults to False.
    """

    def __init__(self, dim, num_heads=4, attn_drop=0.1, proj_drop=0.1,
                 deploy=False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'attention dim {dim} is not divisible by '
                             f'num_heads={num_heads}')
        self.deploy = deploy
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=deploy)
        self.attn_drop = nn.Identity() if deploy else nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Identity() if deploy else nn.Dropout(proj_drop)
        self.rel_pos = EuclideanRelPosBias(num_heads, deploy=deploy)

    def forward(self, x, height, width):
        """x: ``(B, N, dim)`` tokens of an ``height x width`` map."""
        if self.deploy:
            return self.forward_deploy(x, height, width)
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = (attn + self.rel_pos(height, width)).softmax(dim=-1)
        out = self.attn_drop(attn) @ v
        out = out.transpose(1, 2).reshape(b, n, -1)
        return self.proj_drop(self.proj(out))

    def forward_deploy(self, x, height, width):
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.rel_pos(height, width).to(q.dtype)
        # Written out rather than F.scaled_dot_product_attention, whose CPU
        # path for an additive mask is the slower generic one (it checks
        # for fully masked rows); the scaling and the bias go in place.
        attn = q @ k.transpose(-2, -1)
        if functional(attn):
            attn = attn * self.scale + bias
        else:
            attn = attn.mul_(self.scale).add_(bias)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))

    def switch_to_deploy(self):
        """Drop the dropouts; cache the relative-position bias per shape."""
        if self.deploy:
            return
        self.attn_drop = nn.Identity()
        self.proj_drop = nn.Identity()
        self.rel_pos.switch_to_deploy()
        self.deploy = True


class PATSelfAttention(nn.Module):
    """PAT_sf: partial convolution beside a partial self-attention.

    The first ``C // n_div`` channels go through a 3x3 convolution; the
    others are layer-normalised per position and attend over all positions
    (:class:`RelPosSelfAttention`). Used in the last stage, where the map is
    small enough for global attention.

    In deploy form the LayerNorm's affine is folded into the ``qkv``
    projection (the norm keeps only its normalisation).

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
        deploy (bool): Build the inference form. Defaults to False.
    """

    def __init__(self, channels, n_div=4, num_heads=4, attn_drop=0.1,
                 proj_drop=0.1, conv=None, dpconv=None, deploy=False):
        super().__init__()
        self.deploy = deploy
        self.conv_channels = channels // n_div
        self.attn_channels = channels - self.conv_channels
        conv = install_dpconv(self, channels, dpconv, conv)
        self.conv = conv if conv is not None else nn.Conv2d(
            self.conv_channels, self.conv_channels, 3, padding=1, bias=False)
        self.norm = nn.LayerNorm(self.attn_channels, eps=1e-6,
                                 elementwise_affine=not deploy)
        self.attn = RelPosSelfAttention(self.attn_channels, num_heads,
                                        attn_drop, proj_drop, deploy=deploy)

    def forward(self, x):
        if self.deploy:
            return nchw(self.forward_nhwc(nhwc(x)))
        if self.dpconv is not None:
            x = self.dpconv(x)
        x1, x2 = torch.split(x, [self.conv_channels, self.attn_channels], 1)
        b, c, h, w = x2.shape
        tokens = self.norm(x2.flatten(2).transpose(1, 2))
        x2 = self.attn(tokens, h, w).transpose(1, 2).reshape(b, c, h, w)
        return torch.cat((self.conv(x1), x2), dim=1)

    def forward_nhwc(self, t, residual=None):
        """Deploy form on NHWC ``t``, plus ``residual`` if given.

        Args:
            t (Tensor): ``(B, H, W, C)`` input.
            residual (Tensor, optional): ``(B, H, W, C)`` added to the
                output, written straight into the one output buffer.

        Returns:
            Tensor: ``(B, H, W, C)``, contiguous.
        """
        x = nchw(t)
        if self.dpconv is not None:
            x = self.dpconv(x)
            t = nhwc(x)
        c1 = self.conv_channels
        b, h, w, _ = t.shape
        first = nhwc(self.conv(x[:, :c1]))
        tokens = self.norm(t[..., c1:].reshape(b, h * w, self.attn_channels))
        second = self.attn(tokens, h, w).reshape(b, h, w, self.attn_channels)
        if residual is None:
            return torch.cat((first, second), -1)
        return add_cat_channels(residual, first, second)

    def switch_to_deploy(self):
        """Fold the LayerNorm's affine into ``qkv`` (which gets a bias); a
        DPConv becomes a partial convolution; no dropout. Eval-mode outputs
        are unchanged."""
        if self.deploy:
            return
        if self.dpconv is not None:
            self.dpconv.switch_to_deploy()
        fold_input_affine(self.attn.qkv, *norm_affine(self.norm))
        self.norm = nn.LayerNorm(self.attn_channels, eps=self.norm.eps,
                                 elementwise_affine=False).to(
                                     self.attn.qkv.weight.device)
        self.attn.switch_to_deploy()
        self.deploy = True
