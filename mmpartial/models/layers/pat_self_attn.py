import torch
import torch.nn as nn

from .conv_bn import fold_input_affine, norm_affine
from .irpe import EuclideanRelPosBias
from .pat_dpconv import PartialSplitLayer


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
        bias = self.rel_pos(height, width)
        if bias.dtype != q.dtype:  # a float32 table under autocast
            bias = bias.to(q.dtype)
        # Written out rather than F.scaled_dot_product_attention, whose CPU
        # path for an additive mask is the slower generic one.
        attn = torch.matmul(q, k.transpose(-2, -1)) * self.scale + bias
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


class MaskedRelPosSelfAttention(nn.Module):
    """:class:`RelPosSelfAttention` over all channels, restricted by masks
    to a learned subset of them (the training form of a learned split).

    Its ``qkv``, ``proj`` and ``rel_pos`` are those of a
    :class:`RelPosSelfAttention` of width ``dim``; the forward takes the
    attention channels' indicator and each head's channels, and computes
    on them what the attention of that width computes on their slice.

    Args:
        dim (int): All channels of the layer.
        num_heads (int): Heads.
        attn_drop (float): Dropout on the attention map.
        proj_drop (float): Dropout after the output projection.
    """

    def __init__(self, dim, num_heads=4, attn_drop=0.1, proj_drop=0.1):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.rel_pos = EuclideanRelPosBias(num_heads)

    def forward(self, x, height, width, keep):
        """Attention of the channels marked by ``keep``.

        Args:
            x (Tensor): ``(B, N, dim)`` tokens, zero outside ``keep``.
            height (int): Map height.
            width (int): Map width (``N = height * width``).
            keep (Tensor): ``(dim, )`` 0/1 indicator of the attention
                channels (differentiable; the heads are its consecutive
                ``num_heads`` parts, with ``sum(keep) / num_heads``
                channels each).

        Returns:
            Tensor: ``(B, N, dim)``, zero outside ``keep``.
        """
        b, n, dim = x.shape
        heads = self.num_heads
        chosen = keep.detach()
        # Head of every attention channel: its rank among them, in
        # consecutive parts of head_dim channels (no host sync).
        head_dim = chosen.sum() / heads
        rank = chosen.cumsum(0) - 1
        head = torch.div(rank, head_dim, rounding_mode='floor')
        members = (head[None, :] == torch.arange(
            heads, device=x.device, dtype=head.dtype)[:, None]).to(x.dtype)
        members = members * chosen.to(x.dtype)  # (heads, dim)
        q, k, v = self.qkv(x).split(dim, dim=-1)
        q = q[:, None] * members[None, :, None, :] * head_dim.rsqrt()
        attn = q @ k[:, None].transpose(-2, -1)  # (B, heads, N, N)
        attn = (attn + self.rel_pos(height, width)).softmax(dim=-1)
        out = self.attn_drop(attn) @ (v[:, None] * members[None, :, None, :])
        out = out.sum(1) * keep  # the heads' channels do not overlap
        return self.proj_drop(self.proj(out)) * keep


class PATSelfAttention(PartialSplitLayer):
    """PAT_sf: partial convolution beside a partial self-attention.

    The first ``C // n_div`` channels go through a 3x3 convolution; the
    others are layer-normalised per position and attend over all positions
    (:class:`RelPosSelfAttention`). Used in the last stage, where the map is
    small enough for global attention.

    With ``dpconv`` the split is learned (see
    :mod:`~mmpartial.models.layers.pat_dpconv`): the training form holds the
    DPConv and a LayerNorm and an attention over all ``C`` channels
    (``masked_norm``, ``masked_attn``); the LayerNorm averages over the
    attention channels only, the heads split them in consecutive parts.
    The split keeps at least half of the channels for the attention, in a
    number its heads divide: from ``1/2`` down to ``1 / 2**z`` for the
    largest such ``z`` (e.g. ``1/64`` for 256 channels and 4 heads). Once
    deployed it is the plain layer at the learned split.

    In deploy form the LayerNorm's affine is folded into the ``qkv``
    projection (the norm keeps only its normalisation).

    Args:
        channels (int): Input and output channels.
        n_div (int): The convolution gets ``channels // n_div`` channels
            (with ``dpconv``: at the start).
        num_heads (int): Attention heads.
        attn_drop (float): Dropout on the attention map.
        proj_drop (float): Dropout after the attention projection.
        conv (nn.Module, optional): A replacement for the 3x3 convolution.
        dpconv (dict, optional): Learn the split with a DPConv of these
            options (``init_gate``, ``init_split``, ``gates_frozen``).
        deploy (bool): Build the inference form. Defaults to False.
    """

    def __init__(self, channels, n_div=4, num_heads=4, attn_drop=0.1,
                 proj_drop=0.1, conv=None, dpconv=None, deploy=False):
        super().__init__()
        self.num_heads = num_heads
        self.attn_drop_rate = attn_drop
        self.proj_drop_rate = proj_drop
        self._init_split(channels, n_div, conv, dpconv, deploy,
                         max_zeros=self.max_halvings(channels, num_heads)
                         if dpconv is not None else None)

    @staticmethod
    def max_halvings(channels, num_heads):
        """The most halvings a learned split may make: every split ``C /
        2**z`` for ``z`` from 1 up to it leaves an attention width that is a
        positive multiple of ``num_heads``.

        Raises:
            ValueError: Not even ``z = 1`` (half the channels) works.
        """
        exact = (channels & -channels).bit_length() - 1
        zeros = 0
        while zeros < exact:
            attn = channels - channels // 2**(zeros + 1)
            if attn % num_heads:
                break
            zeros += 1
        if zeros == 0:
            raise ValueError(
                f'PATSelfAttention({channels}) with a DPConv: no split '
                f'leaves an attention width that {num_heads} heads divide '
                f'(tried {channels - channels // 2})')
        return zeros

    def _build_branches(self, conv_channels, deploy, conv=None):
        self.conv_channels = conv_channels
        self.attn_channels = d = self.channels - conv_channels
        self.conv = conv if conv is not None else nn.Conv2d(
            conv_channels, conv_channels, 3, padding=1, bias=False)
        self.norm = nn.LayerNorm(d, eps=1e-6, elementwise_affine=not deploy)
        self.attn = RelPosSelfAttention(d, self.num_heads,
                                        self.attn_drop_rate,
                                        self.proj_drop_rate, deploy=deploy)

    def _build_masked(self):
        self.masked_norm = nn.LayerNorm(self.channels, eps=1e-6)
        self.masked_attn = MaskedRelPosSelfAttention(
            self.channels, self.num_heads, self.attn_drop_rate,
            self.proj_drop_rate)

    def _masked_attention(self, x, keep):
        b, c, h, w = x.shape
        keep = keep.flatten()
        tokens = (x * keep[:, None, None]).flatten(2).transpose(1, 2)
        # LayerNorm over the attention channels only.
        count = keep.sum()
        mean = (tokens * keep).sum(-1, keepdim=True) / count
        centred = (tokens - mean) * keep
        var = centred.square().sum(-1, keepdim=True) / count
        norm = self.masked_norm
        tokens = (centred * torch.rsqrt(var + norm.eps) * norm.weight +
                  norm.bias) * keep
        out = self.masked_attn(tokens, h, w, keep)
        return out.transpose(1, 2).reshape(b, c, h, w)

    @torch.no_grad()
    def _slice_masked(self, attn_index):
        norm, attn = self.masked_norm, self.masked_attn
        del self.masked_norm, self.masked_attn
        ref = attn.qkv.weight
        self.norm.to(ref)
        self.attn.to(ref)
        index = attn_index
        c, d = self.channels, index.numel()
        self.norm.weight.copy_(norm.weight[index])
        self.norm.bias.copy_(norm.bias[index])
        qkv = ref.view(3, c, c)[:, index][:, :, index]
        self.attn.qkv.weight.copy_(qkv.reshape(3 * d, d))
        self.attn.proj.weight.copy_(attn.proj.weight[index][:, index])
        self.attn.proj.bias.copy_(attn.proj.bias[index])
        self.attn.rel_pos.bias_table.copy_(attn.rel_pos.bias_table)

    def _plain_layout(self):
        return [
            ('norm.weight', 'masked_norm.weight', 'vec'),
            ('norm.bias', 'masked_norm.bias', 'vec'),
            ('attn.qkv.weight', 'masked_attn.qkv.weight', 'qkv'),
            ('attn.proj.weight', 'masked_attn.proj.weight', 'square'),
            ('attn.proj.bias', 'masked_attn.proj.bias', 'vec'),
            ('attn.rel_pos.bias_table', 'masked_attn.rel_pos.bias_table',
             'copy'),
        ]

    def attention_macs(self, attn_channels, height, width):
        """``qkv`` and ``proj`` (``4 * N * d**2``) and the two attention
        products (``2 * N**2 * d``), ``N = height * width``."""
        tokens = height * width
        return 4 * tokens * attn_channels * attn_channels + \
            2 * tokens * tokens * attn_channels

    def forward(self, x):
        """The 3x3 convolution of the first part beside the attention over
        the positions of the second, concatenated over channels; in train
        and deploy form alike (in deploy form the norm has no affine and
        the attention no dropout).

        Returns:
            Tensor: ``(B, C, H, W)``, in ``x``'s memory format.
        """
        if self.learns_split:
            return self._forward_learned(x)
        self._check_sized()
        x = self.gather_channels(x, 1)
        x1, x2 = torch.split(x, [self.conv_channels, self.attn_channels], 1)
        h, w = x2.shape[2:]
        tokens = self.norm(x2.flatten(2).transpose(1, 2))
        # reshape_as rather than the four sizes: fewer shape operators in
        # an exported graph.
        x2 = self.attn(tokens, h, w).transpose(1, 2).reshape_as(x2)
        return self.scatter_channels(torch.cat((self.conv(x1), x2), dim=1),
                                     1)

    def _deploy_branches(self):
        """Fold the LayerNorm's affine into ``qkv`` (which gets a bias); no
        dropout."""
        fold_input_affine(self.attn.qkv, *norm_affine(self.norm))
        self.norm = nn.LayerNorm(self.attn_channels, eps=self.norm.eps,
                                 elementwise_affine=False).to(
                                     self.attn.qkv.weight.device)
        self.attn.switch_to_deploy()
