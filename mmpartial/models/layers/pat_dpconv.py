"""A PAT layer whose channel split is learned by a DPConv.

A PAT layer (PAT_ch, PAT_sf) splits its ``C`` channels into ``[n, C - n]``:
a 3x3 convolution over the first ``n``, its attention branch over the rest.
The plain layer fixes ``n = C // n_div``. With a DPConv (spec, "DPConv")
the split is learned: the DPConv's gates give the indicator ``r`` of the
convolved channels (``sum(r) = n``) and

Training form (masks over all ``C`` channels)::

    y = conv(x, weight * M)                  # zero outside r (DPConv)
        + (1 - r) * attention((1 - r) * x)   # zero inside r

The attention branch is built over all ``C`` channels (its modules are
named ``masked_*``) and computes, on the masked input, exactly what the
plain branch of width ``C - n`` computes on its slice: its per-channel
parts (norms, gating) are independent per channel, its channel-mixing
parts (PAT_ch's (1, 2) convolution, PAT_sf's ``qkv`` and ``proj``) see
zeros outside the attention channels, PAT_sf's LayerNorm averages over the
attention channels only and its heads are the consecutive quarters of them.
The gates get gradients through both branches, via ``r``.

Deploy form (:meth:`PartialSplitLayer.switch_to_deploy`)
    The layer takes slices: the convolution's block of the DPConv weight and
    the attention channels' rows and columns of every masked module. It is
    then the plain PAT layer with ``n`` convolved channels (at ratio
    ``1 / n_div``, ``PAT(n_div=n_div)``: same modules, same shapes, same
    MACs); only ``dpconv.split_stats`` (what the split was) is left of the
    DPConv. For gates out of order (not a prefix) the layer also keeps
    ``channel_perm``: its input channels are gathered into ``[convolved,
    attention]`` order and its output scattered back.

Loading
    - A plain checkpoint (no DPConv): each tensor of the plain layer goes to
      its place in the full-width one (the 3x3 kernel to the top-left block
      of ``dpconv.weight``, the attention's to the channels after ``n``);
      the rest keep their values. At the initial split ``n / C`` the layer
      then computes what the plain one did.
    - A deploy checkpoint into a layer built with ``deploy=True``: such a
      layer has no convolution or attention branch until the checkpoint
      tells it ``n`` (the shape of its ``conv.weight``); it builds them at
      that width while loading, so the load can be strict.

Cost
    :meth:`PartialSplitLayer.complexity` is the layer's multiply-adds
    (convolution, linear and matrix products of both branches, per image at
    the last input size), differentiable through the gates; the budget is
    the same count at the split ``1 / budget**2``.
"""
import torch
import torch.nn as nn

from mmpartial.utils.torch_compat import register_load_state_dict_pre_hook
from .dpconv import DPConv

# Options a PAT layer passes on to its DPConv.
DPCONV_LAYER_OPTIONS = ('init_gate', 'init_split', 'gates_frozen')


def _is_power_of_two(value):
    return isinstance(value, int) and value >= 1 and not value & (value - 1)


class PartialSplitLayer(nn.Module):
    """Common part of PAT_ch and PAT_sf: the ``[conv, attention]`` split,
    fixed or learned by a DPConv.

    Subclasses build their branches at a width (:meth:`_build_branches`),
    their full-width masked branch (:meth:`_build_masked`) and its forward
    (:meth:`_masked_attention`), slice it (:meth:`_slice_masked`), list the
    plain tensors and where they go in the masked ones
    (:meth:`_plain_layout`) and count their attention's multiply-adds
    (:meth:`attention_macs`).
    """

    kernel_size = 3

    def _init_split(self, channels, n_div, conv, dpconv, deploy,
                    max_zeros=None):
        """Build the layer: plain at ``channels // n_div``, or with a DPConv.

        Args:
            channels (int): Channels of the layer.
            n_div (int): The plain split; with ``dpconv`` the initial one (a
                power of two).
            conv (nn.Module, optional): Replacement of the 3x3 convolution
                (plain layers only).
            dpconv (dict, optional): Options of the DPConv (any of
                ``init_gate``, ``init_split``, ``gates_frozen``).
            deploy (bool): Build the deploy form.
            max_zeros (int, optional): The most halvings the layer allows.
        """
        self.channels = channels
        self.deploy = deploy
        self.dpconv = None
        # Set (a buffer) only for a learned split that is not a prefix.
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
        if not _is_power_of_two(n_div) or n_div < 2:
            raise ValueError(f'a PAT layer with a DPConv starts at the split '
                             f'1 / n_div, so n_div must be a power of two >= '
                             f'2, got {n_div!r}')
        options = dict(dpconv)
        if options.get('init_split') is None:
            options['init_split'] = 1 / n_div
        try:
            # At least one halving: the attention branch keeps C / 2 or more.
            self.dpconv = DPConv(channels, self.kernel_size, min_zeros=1,
                                 max_zeros=max_zeros, deploy=deploy,
                                 **options)
        except ValueError as err:
            raise ValueError(f'{type(self).__name__}({channels}) with a '
                             f'DPConv: {err}') from None
        self.dpconv.attach()
        if deploy:
            # Built at the width a deploy checkpoint gives (see below).
            self.conv = None
            self.conv_channels = self.attn_channels = None
            register_load_state_dict_pre_hook(self, _resize_to_checkpoint)
        else:
            # Meaningful after deploy; the initial split until then.
            self.conv_channels = self.dpconv.split()['conv_channels']
            self.attn_channels = channels - self.conv_channels
            self._build_masked()
            register_load_state_dict_pre_hook(self, _load_plain_checkpoint)

    # ------------------------------------------------------ what subclasses do

    def _build_branches(self, conv_channels, deploy, conv=None):
        raise NotImplementedError

    def _build_masked(self):
        raise NotImplementedError

    def _masked_attention(self, x, keep):
        raise NotImplementedError

    def _slice_masked(self, attn_index):
        raise NotImplementedError

    def _plain_layout(self):
        raise NotImplementedError

    def attention_macs(self, attn_channels, height, width):
        raise NotImplementedError

    # ------------------------------------------------------------- the split

    @property
    def learns_split(self):
        """True while the split is learned (a DPConv with live gates)."""
        return self.dpconv is not None and not self.dpconv.deploy

    def _forward_learned(self, x):
        """Training form with a DPConv: masks over both branches."""
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
        """Reorder channels into ``[convolved, attention]`` (for a learned
        split that is not a prefix; otherwise ``x`` itself)."""
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
        """Turn the masked training form into the plain PAT layer at the
        learned split (still in training form): slices of the DPConv
        weight and of the masked branch; the DPConv keeps only its
        ``split_stats``. Eval-mode outputs are unchanged. Nothing to do
        without a learned split."""
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

    # --------------------------------------------------------------- the cost

    def _hw(self, hw):
        hw = hw or self._last_hw or self.default_hw
        if hw is None:
            raise RuntimeError(
                f'{type(self).__name__}: the cost depends on the input size;'
                ' pass hw=(height, width) or run a forward first')
        return hw

    def complexity(self, hw=None):
        """Multiply-adds of the layer per image (convolution, linear and
        matrix products of both branches), as a float32 scalar tensor,
        differentiable through the gates while the split is learned.

        Args:
            hw (tuple[int, int], optional): Input size; defaults to the
                size of the last training forward, else :attr:`default_hw`
                (set by the backbone to the map size of a 224x224 image).
        """
        height, width = self._hw(hw)
        area = self.kernel_size**2 * height * width
        if self.learns_split:
            # Float32 also under autocast: the count reaches ~1e9.
            conv = self.dpconv.conv_mask().float().sum()
            attn = self.channels - self.dpconv.conv_indicator().float().sum()
            return area * conv + self.attention_macs(attn, height, width)
        self._check_sized()
        n = self.conv_channels
        total = area * n * n + self.attention_macs(self.channels - n,
                                                   height, width)
        return torch.tensor(float(total))

    def budget_complexity(self, budget, hw=None):
        """:meth:`complexity` at the split ``1 / budget**2`` (the budget
        ``b`` of the spec: ``b = 2`` is PartialNet's 1/4), a float."""
        height, width = self._hw(hw)
        n = self.channels / budget**2
        return float(self.kernel_size**2 * height * width * n * n +
                     self.attention_macs(self.channels - n, height, width))

    def ordering_loss(self):
        """The DPConv's ordering penalty (0 without a learned split)."""
        if self.dpconv is None:
            return torch.zeros(())
        return self.dpconv.ordering_loss()

    # ---------------------------------------------------------------- deploy

    def _deploy_branches(self):
        raise NotImplementedError

    def switch_to_deploy(self):
        """Slice a learned split (:meth:`materialize_split`), then fold what
        the plain layer folds on its own. Eval-mode outputs are unchanged."""
        if self.deploy:
            return
        self.materialize_split()
        self._deploy_branches()
        self.deploy = True


def _place(target, plain, layout, n):
    """Write a plain layer's tensor into its full-width counterpart.

    ``layout``: ``'vec'`` (channels ``n:``), ``'square'`` (rows and columns
    ``n:``), ``'qkv'`` (three ``C x C`` blocks, each at ``n:, n:``) or
    ``'copy'`` (same shape). Returns False if the shapes do not fit.
    """
    d = target.shape[0] - n if target.dim() else 0
    if layout == 'copy':
        if plain.shape != target.shape:
            return False
        target.copy_(plain)
    elif layout == 'vec':
        if plain.shape != (d, ):
            return False
        target[n:] = plain
    elif layout == 'square':
        if plain.shape != (d, d) + target.shape[2:]:
            return False
        target[n:, n:] = plain
    else:  # qkv
        c = target.shape[1]
        d = c - n
        if plain.shape != (3 * d, d):
            return False
        target.view(3, c, c)[:, n:, n:] = plain.view(3, d, d)
    return True


@torch.no_grad()
def _load_plain_checkpoint(layer, state_dict, prefix, *args):
    """Load a plain PAT layer's tensors into the masked training form.

    Recognised by ``conv.weight`` without ``dpconv.weight``; ``n`` is its
    width. Every tensor of the plain layer (:meth:`_plain_layout`) must be
    there with the plain shape, else nothing is changed (and
    ``load_state_dict`` reports what does not fit).
    """
    if not layer.learns_split:
        return
    conv_key = prefix + 'conv.weight'
    if conv_key not in state_dict or prefix + 'dpconv.weight' in state_dict:
        return
    plain = state_dict[conv_key]
    full = layer.dpconv.weight
    n = plain.shape[0] if plain.dim() == 4 else 0
    if not 0 < n < layer.channels or plain.shape != (n, n) + full.shape[2:]:
        return
    weight = full.detach().clone()
    weight[:n, :n] = plain
    new = {prefix + 'dpconv.weight': weight}
    own = layer.state_dict()
    for plain_key, masked_key, layout in layer._plain_layout():
        value = state_dict.get(prefix + plain_key)
        target = own[masked_key].clone()
        if value is None or not _place(target, value, layout, n):
            return
        new[prefix + masked_key] = target
    for plain_key, _, _ in layer._plain_layout():
        del state_dict[prefix + plain_key]
    del state_dict[conv_key]
    state_dict.update(new)
    state_dict.setdefault(prefix + 'dpconv.gate',
                          layer.dpconv.gate.detach().clone())


def _resize_to_checkpoint(layer, state_dict, prefix, *args):
    """Give a layer built with ``deploy=True`` the split of a deploy
    checkpoint: its ``conv.weight`` says ``n``, ``channel_perm`` (if there)
    the order. Shapes that do not fit are left to ``load_state_dict``."""
    if not layer.deploy or layer.dpconv is None:
        return
    weight = state_dict.get(prefix + 'conv.weight')
    k = layer.kernel_size
    if weight is None or weight.dim() != 4 or \
            weight.shape[0] != weight.shape[1] or \
            weight.shape[2:] != (k, k) or \
            not 0 < weight.shape[0] < layer.channels:
        return
    n = weight.shape[0]
    device = layer.dpconv.split_stats.device
    if layer.conv is None or layer.conv_channels != n:
        layer._build_branches(n, deploy=True)
        layer.to(device)
        # The deployed backbone keeps its spatial kernels channels_last.
        layer.conv.weight.data = layer.conv.weight.data.contiguous(
            memory_format=torch.channels_last)
        layer.train(layer.training)
    perm = state_dict.get(prefix + 'channel_perm')
    if perm is not None and perm.shape == (layer.channels, ):
        layer.register_buffer('channel_perm', torch.empty(
            layer.channels, dtype=perm.dtype, device=device))
    elif perm is None:
        layer.register_buffer('channel_perm', None)
