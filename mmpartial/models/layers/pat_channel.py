import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from .builders import build_norm
from .conv_bn import conv_to_linear, fold_output_affine, norm_affine
from .pat_dpconv import PartialSplitLayer


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
            return self.forward_deploy(x)
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
    def style_stats(x):
        """Per-channel mean and std (unbiased; biased on one position) of
        ``x`` (``(B, C, H, W)``, any memory format) as two ``(B, C, 1, 1)``
        tensors.

        Two passes (the mean, then the squared deviations) rather than
        ``torch.std_mean``, whose one-pass Welford kernel is several times
        slower on CPU; both are exact to rounding. Plain operators, so that
        a compiler fuses them and an exporter maps them one to one; the
        kept dimensions spare an exported graph the reshapes.
        """
        positions = x.shape[2] * x.shape[3]
        mean = x.mean((2, 3), keepdim=True)
        deviation = x - mean
        squares = (deviation * deviation).sum((2, 3), keepdim=True)
        if isinstance(positions, torch.Tensor):  # a traced size
            count = (positions - 1).clamp(min=1).to(squares.dtype)
        else:
            count = max(positions - 1, 1)
        return mean, (squares / count).sqrt()

    def forward_deploy(self, x):
        """Deploy form: the gate of ``x`` as ``(B, C, 1, 1)`` factors."""
        mean, std = self.style_stats(x)
        # The (1, 2) kernel reads (mean, std) of every input channel: as a
        # matrix, columns in the order (channel, statistic).
        gate = self.act(self.conv(torch.cat((mean, std), -1).flatten(1)))
        return gate.reshape(-1, self.conv.out_features, 1, 1)

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


class PATChannel(PartialSplitLayer):
    """PAT_ch: partial convolution beside a partial channel attention.

    The first ``C // n_div`` channels go through a 3x3 convolution; the other
    channels are scaled by a :class:`StylePoolGate` and normalised. The two
    parts are concatenated back in that order. With ``channel_attn=False``
    the other channels pass through unchanged: FasterNet's plain partial
    convolution (the reference's ``use_channel_attn=False``).

    With ``dpconv`` the split is learned (see
    :mod:`~mmpartial.models.layers.pat_dpconv`): the training form holds the
    DPConv (its full ``C x C`` kernel and gates) and a gate and a norm over
    all ``C`` channels (``masked_gate``, ``masked_norm``); once deployed it
    is the plain layer at the learned split.

    In deploy form the gate's norm is folded into its convolution; the norm
    after the gating stays until the enclosing block folds it into the
    MLP's first convolution (``PartialBlock.switch_to_deploy``), and is an
    identity in a model built with ``deploy=True``.

    Args:
        channels (int): Input and output channels.
        n_div (int): The convolution gets ``channels // n_div`` channels
            (with ``dpconv``: at the start).
        norm_cfg (dict): Config of the norm layers.
        conv (nn.Module, optional): A replacement for the 3x3 convolution
            over the first part; it must map ``channels // n_div`` channels
            to as many.
        dpconv (dict, optional): Learn the split with a DPConv of these
            options (``init_gate``, ``init_split``, ``gates_frozen``).
        channel_attn (bool): Gate and normalise the second part. Defaults
            to True.
        deploy (bool): Build the inference form of the enclosing block: the
            gate folded, no norm after the gating. Defaults to False.
    """

    def __init__(self, channels, n_div=4, norm_cfg=None, conv=None,
                 dpconv=None, channel_attn=True, deploy=False):
        super().__init__()
        if not isinstance(channel_attn, bool):
            raise TypeError(f'channel_attn must be a bool, got '
                            f'{channel_attn!r}')
        self.norm_cfg = norm_cfg
        self.channel_attn = channel_attn
        self._init_split(channels, n_div, conv, dpconv, deploy)

    def _build_branches(self, conv_channels, deploy, conv=None):
        self.conv_channels = conv_channels
        self.attn_channels = d = self.channels - conv_channels
        self.conv = conv if conv is not None else nn.Conv2d(
            conv_channels, conv_channels, 3, padding=1, bias=False)
        if self.channel_attn:
            self.gate = StylePoolGate(d, self.norm_cfg, deploy)
            self.norm = nn.Identity() if deploy else build_norm(
                self.norm_cfg, d)
        else:
            self.gate = None
            self.norm = nn.Identity()

    def _build_masked(self):
        if self.channel_attn:
            self.masked_gate = StylePoolGate(self.channels, self.norm_cfg)
            self.masked_norm = build_norm(self.norm_cfg, self.channels)

    def _masked_attention(self, x, keep):
        x2 = x * keep
        if not self.channel_attn:
            return x2
        return keep * self.masked_norm(x2 * self.masked_gate(x2))

    @torch.no_grad()
    def _slice_masked(self, attn_index):
        if not self.channel_attn:
            return
        gate, norm = self.masked_gate, self.masked_norm
        del self.masked_gate, self.masked_norm
        self.gate.to(gate.conv.weight)
        self.norm.to(gate.conv.weight)
        index = attn_index
        self.gate.conv.weight.copy_(gate.conv.weight[index][:, index])
        _copy_norm(self.gate.norm, gate.norm, index)
        _copy_norm(self.norm, norm, index)

    def _plain_layout(self):
        if not self.channel_attn:
            return []
        layout = [('gate.conv.weight', 'masked_gate.conv.weight', 'square')]
        for name in ('gate.norm', 'norm'):
            layout += [(f'{name}.{key}', f'masked_{name}.{key}', 'vec')
                       for key in ('weight', 'bias', 'running_mean',
                                   'running_var')]
            layout.append((f'{name}.num_batches_tracked',
                           f'masked_{name}.num_batches_tracked', 'copy'))
        return layout

    def attention_macs(self, attn_channels, height, width):
        """The gate's (1, 2) convolution: ``2 * d**2`` per image."""
        return 2 * attn_channels * attn_channels if self.channel_attn else 0

    def forward(self, x):
        """The 3x3 convolution of the first part beside the gated second
        part, concatenated over channels; in train and deploy form alike
        (in deploy form the gate is folded and, once the block folded it,
        the norm an identity).

        Returns:
            Tensor: ``(B, C, H, W)``, in ``x``'s memory format.
        """
        if self.learns_split:
            return self._forward_learned(x)
        self._check_sized()
        x = self.gather_channels(x, 1)
        x1, x2 = torch.split(x, [self.conv_channels, self.attn_channels], 1)
        if self.gate is not None:
            x2 = self.norm(x2 * self.gate(x2))
        return self.scatter_channels(torch.cat((self.conv(x1), x2), dim=1),
                                     1)

    def _deploy_branches(self):
        """Fold what this layer can fold on its own (the gate's norm). The
        norm after the gating is left for the enclosing block to fold."""
        if self.gate is not None:
            self.gate.switch_to_deploy()


@torch.no_grad()
def _copy_norm(norm, full, index):
    """Load the ``index`` channels of BatchNorm ``full`` into ``norm``."""
    for name in ('weight', 'bias', 'running_mean', 'running_var'):
        target = getattr(norm, name)
        if target is not None:
            target.copy_(getattr(full, name)[index])
    if norm.num_batches_tracked is not None:
        norm.num_batches_tracked.copy_(full.num_batches_tracked)
