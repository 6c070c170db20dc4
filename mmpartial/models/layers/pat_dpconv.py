"""A PAT layer whose channel split is learned by a DPConv.

A PAT layer (PAT_ch, PAT_sf) convolves ``n`` of its ``C`` channels and
runs its attention branch over the rest (plain: ``n = C // n_div``). With
a DPConv, whose indicator ``r`` marks the ``n`` convolved channels, the
training form masks both branches over all ``C`` channels::

    y = conv(x, weight * M) + (1 - r) * attention((1 - r) * x)

The full-width attention (modules ``masked_*``) computes on the masked
input exactly what the plain branch of width ``C - n`` computes on its
slice, and the gates get gradients through both branches. Deploying
slices every tensor to the learned split: the plain PAT layer plus
``dpconv.split_stats`` and, for gates out of order, ``channel_perm``
(input gathered into ``[convolved, attention]``, output scattered back).
A plain checkpoint loads into the full-width tensors; a layer built with
``deploy=True`` takes its widths from the deploy checkpoint it loads.
"""
import torch
import torch.nn as nn

from mmpartial.utils.torch_compat import register_load_state_dict_pre_hook
from .dpconv import DPConv, checkpoint_width, fit_index_buffer

# Options a PAT layer passes on to its DPConv.
DPCONV_LAYER_OPTIONS = ('init_gate', 'init_split', 'gates_frozen')


class PartialSplitLayer(nn.Module):
    """Common part of PAT_ch and PAT_sf: the ``[conv, attention]`` split,
    fixed or learned by a DPConv.

    Subclasses define ``_build_branches(n, deploy, conv=None)``,
    ``_build_masked()``, ``_masked_attention(x, keep)``,
    ``_slice_masked(attn_index)``, ``_plain_layout()`` (plain keys, masked
    keys, layouts), ``attention_macs(d, height, width)`` and
    ``_deploy_branches()``.
    """

    kernel_size = 3

    def _init_split(self, channels, n_div, conv, dpconv, deploy,
                    max_zeros=None):
        """Build the layer at ``channels // n_div``, or with a DPConv of the
        options ``dpconv`` from ``1 / n_div`` up to ``max_zeros`` halvings."""
        self.channels = channels
        self.deploy = deploy
        self.dpconv = None
        # Set only for a learned split that is not a prefix.
        self.register_buffer('channel_perm', None)
        self._last_hw = None
        self.default_hw = None
        if dpconv is None:
            self._build_branches(channels // n_div, deploy, conv)
            return
        if conv is not None:
            raise ValueError('a PAT layer takes either conv (a fixed '
                             'convolution of the first part) or dpconv (a '
                             'learned split), not both')
        if not isinstance(dpconv, dict):
            raise TypeError(f'dpconv must be a dict of DPConv options '
                            f'({", ".join(DPCONV_LAYER_OPTIONS)}), got '
                            f'{type(dpconv).__name__}')
        unknown = sorted(set(dpconv) - set(DPCONV_LAYER_OPTIONS))
        if unknown:
            raise ValueError(
                f'unknown DPConv option(s) {unknown} for a PAT layer; '
                f'valid: {", ".join(DPCONV_LAYER_OPTIONS)}')
        if not isinstance(n_div, int) or n_div < 2 or n_div & (n_div - 1):
            raise ValueError(f'a PAT layer with a DPConv starts at the split '
                             f'1 / n_div, so n_div must be a power of two >= '
                             f'2, got {n_div!r}')
        options = dict(dpconv)
        if options.get('init_split') is None:
            options['init_split'] = 1 / n_div
        try:
            # At least one halving: the attention keeps C / 2 or more.
            self.dpconv = DPConv(channels, self.kernel_size, min_zeros=1,
                                 max_zeros=max_zeros, deploy=deploy,
                                 **options)
        except ValueError as err:
            raise ValueError(f'{type(self).__name__}({channels}) with a '
                             f'DPConv: {err}') from None
        self.dpconv.attach()
        if deploy:
            self.conv = None
            self.conv_channels = self.attn_channels = None
            register_load_state_dict_pre_hook(self, _resize_to_checkpoint)
        else:
            # The initial split until deploy.
            self.conv_channels = self.dpconv.split()['conv_channels']
            self.attn_channels = channels - self.conv_channels
            self._build_masked()
            register_load_state_dict_pre_hook(self, _load_plain_checkpoint)

    @property
    def learns_split(self):
        """True while the split is learned (a DPConv with live gates)."""
        return self.dpconv is not None and not self.dpconv.deploy

    def _forward_learned(self, x):
        """The masked training form."""
        self._last_hw = tuple(int(s) for s in x.shape[-2:])
        keep = (1 - self.dpconv.conv_indicator()).to(x.dtype)
        return self.dpconv.conv_part(x) + \
            self._masked_attention(x, keep[:, None, None])

    def _check_sized(self):
        if self.conv is None:
            raise RuntimeError(
                f'{type(self).__name__} was built with deploy=True and a '
                'DPConv: its split (and so its widths) comes with a deploy '
                'checkpoint; load one (e.g. written by '
                'tools/reparameterize.py) before running it')

    def gather_channels(self, x, dim):
        """Reorder channels into ``[convolved, attention]``."""
        if self.channel_perm is None:
            return x
        return x.index_select(dim, self.channel_perm)

    def scatter_channels(self, x, dim):
        """Undo :meth:`gather_channels`."""
        if self.channel_perm is None:
            return x
        return x.index_select(dim, torch.argsort(self.channel_perm))

    def attn_index(self):
        """Where the attention channels are in the layer's output."""
        if self.learns_split:
            return self.dpconv.split_index()[1]
        if self.channel_perm is not None:
            return self.channel_perm[self.conv_channels:]
        device = self.conv.weight.device
        return torch.arange(self.conv_channels, self.channels, device=device)

    @torch.no_grad()
    def materialize_split(self):
        """Slice the masked training form to the plain PAT layer at the
        learned split, still in training form (eval outputs unchanged)."""
        if not self.learns_split:
            return
        conv_index, attn_index = self.dpconv.split_index()
        n = conv_index.numel()
        weight = self.dpconv.weight[conv_index][:, conv_index]
        self._build_branches(n, deploy=False)
        self.conv.to(weight)
        self.conv.weight.copy_(weight)
        self._slice_masked(attn_index)
        perm = torch.cat((conv_index, attn_index))
        ordered = bool((perm == torch.arange(self.channels,
                                             device=perm.device)).all())
        self.register_buffer('channel_perm', None if ordered else perm)
        self.dpconv.deploy_split()
        self.train(self.training)

    def _macs(self, hw, attn_channels, *conv):
        """Multiply-adds of the attention over ``attn_channels`` and of the
        convolution, ``k * k * H * W`` times the ``conv`` factors (``n, n``,
        or the nonzeros of its mask)."""
        hw = hw or self._last_hw or self.default_hw
        if hw is None:
            raise RuntimeError(
                f'{type(self).__name__}: the cost depends on the input size;'
                ' pass hw=(height, width) or run a forward first')
        height, width = hw
        macs = self.kernel_size**2 * height * width
        for factor in conv:
            macs = macs * factor
        return macs + self.attention_macs(attn_channels, height, width)

    def complexity(self, hw=None):
        """Multiply-adds per image (convolution, linear and matrix products
        of both branches) at input size ``hw`` (default: the last training
        forward's, else :attr:`default_hw`, a 224x224 image's in a
        backbone), a float32 scalar differentiable through the gates."""
        if self.learns_split:
            # Float32 also under autocast: the count reaches ~1e9.
            return self._macs(
                hw, self.channels - self.dpconv.conv_indicator().float().sum(),
                self.dpconv.conv_mask().float().sum())
        self._check_sized()
        n = self.conv_channels
        return torch.tensor(float(self._macs(hw, self.channels - n, n, n)))

    def budget_complexity(self, budget, hw=None):
        """:meth:`complexity` at the split ``1 / budget**2``, a float."""
        n = self.channels / budget**2
        return float(self._macs(hw, self.channels - n, n, n))

    def ordering_loss(self):
        """The DPConv's ordering penalty (0 without a learned split)."""
        if self.dpconv is None:
            return torch.zeros(())
        return self.dpconv.ordering_loss()

    def switch_to_deploy(self):
        """Slice a learned split (:meth:`materialize_split`), then fold what
        the plain layer folds. Eval-mode outputs are unchanged."""
        if self.deploy:
            return
        self.materialize_split()
        self._deploy_branches()
        self.deploy = True


def _plain_part(target, layout, n):
    """The view of full-width ``target`` a plain tensor fills, and the
    plain shape: ``n:`` of the channels (``'vec'``), of rows and columns
    (``'square'``) or of those of three ``C x C`` blocks (``'qkv'``); or
    all (``'copy'``)."""
    if layout == 'qkv':
        c = target.shape[1]
        return target.view(3, c, c)[:, n:, n:], (3 * (c - n), c - n)
    part = target[n:] if layout == 'vec' else \
        target[n:, n:] if layout == 'square' else target
    return part, part.shape


@torch.no_grad()
def _load_plain_checkpoint(layer, state_dict, prefix, *args):
    """Put a plain PAT layer's tensors (``conv.weight`` of width ``n``, no
    ``dpconv.weight``) into the masked training form, if all are there in
    the plain shape (else ``load_state_dict`` reports what does not fit)."""
    if not layer.learns_split or prefix + 'dpconv.weight' in state_dict:
        return
    conv_key = prefix + 'conv.weight'
    full = layer.dpconv.weight
    n = checkpoint_width(state_dict, conv_key, full.shape[2],
                         layer.channels - 1)
    if n is None:
        return
    weight = full.detach().clone()
    weight[:n, :n] = state_dict[conv_key]
    new = {prefix + 'dpconv.weight': weight}
    own = layer.state_dict()
    for plain_key, masked_key, layout in layer._plain_layout():
        value = state_dict.get(prefix + plain_key)
        target = own[masked_key].clone()
        part, shape = _plain_part(target, layout, n)
        if value is None or value.shape != shape:
            return
        part.copy_(value.view(part.shape))
        new[prefix + masked_key] = target
    for plain_key, _, _ in layer._plain_layout():
        del state_dict[prefix + plain_key]
    del state_dict[conv_key]
    state_dict.update(new)
    state_dict.setdefault(prefix + 'dpconv.gate',
                          layer.dpconv.gate.detach().clone())


def _resize_to_checkpoint(layer, state_dict, prefix, *args):
    """Build a ``deploy=True`` layer's branches at the checkpoint's split:
    ``n`` from ``conv.weight``, the order from ``channel_perm``."""
    if not layer.deploy or layer.dpconv is None:
        return
    n = checkpoint_width(state_dict, prefix + 'conv.weight',
                         layer.kernel_size, layer.channels - 1)
    if n is None:
        return
    device = layer.dpconv.split_stats.device
    if layer.conv is None or layer.conv_channels != n:
        layer._build_branches(n, deploy=True)
        layer.to(device)
        # The deployed backbone keeps its spatial kernels channels_last.
        layer.conv.weight.data = layer.conv.weight.data.contiguous(
            memory_format=torch.channels_last)
        layer.train(layer.training)
    fit_index_buffer(layer, 'channel_perm',
                     state_dict.get(prefix + 'channel_perm'), layer.channels,
                     device)
