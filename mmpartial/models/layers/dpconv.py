"""DPConv: a convolution whose partial-channel split ratio is learned.

Gates and mask
    ``K = ceil(log2(C))`` gates ``g`` are binarised by a straight-through
    estimator (:class:`BinarizeSTE`) into ``s`` in {0, 1}. Gate ``k`` gives
    the 2x2 factor ``U_k = s_k * ones(2, 2) + (1 - s_k) * eye(2)`` and the
    paper's mask is ``U = U_1 (x) U_2 (x) ... (x) U_K`` (Kronecker products,
    ``U_1`` outermost). A zero gate halves: ``s_1 = 0`` makes ``U`` block
    diagonal with two blocks. With the ordered sequence ``0...0 1...1`` (z
    zeros) ``U = eye(2**z) (x) ones(C / 2**z)``: ``2**z`` equal dense blocks
    of consecutive channels, i.e. a group convolution.

    Some gates may be fixed (``min_zeros``, ``max_zeros``): the first
    ``min_zeros`` gates are always 0 and the gates after ``max_zeros`` always
    1, so the number of zero gates stays in ``[min_zeros, max_zeros]``. Only
    the others are parameters (``gate``, :attr:`num_gates` of them). A PAT
    layer uses this to keep at least half of its channels for its attention
    branch and, for self-attention, a width its heads divide.

Training form = deploy form (a partial convolution)
    The paper trains with ``weight * U`` (a group convolution over all
    channels) but deploys a partial convolution over the first
    ``C / 2**z`` channels with the other channels passed through. The two
    differ, so an exact ``switch_to_deploy`` needs one of them to change.
    By default (``train_form='partial'``) the training forward is the
    partial convolution itself, which keeps the paper's meaning (the learned
    ratio is the share of channels the deployed layer convolves)::

        M = diag(r) @ U,  r = diag(M) = U[0]    (channel 0's block)
        y = conv(x, weight * M) + (1 - r) * x

    ``r`` marks the convolved channels; the others are copied unchanged.
    ``M`` is built as the Kronecker product of ``[[1, s_k], [s_k, s_k]]``
    (equal to ``diag(r) @ U`` for binary ``s``), so every entry is linear in
    each ``s_k`` and the straight-through gradient of a gate is exactly the
    first-order change of the loss when that gate flips. ``U`` itself is
    still what :meth:`complexity` counts (the paper's ``nnz(U)``, whose
    budget ``C**2 / b**2`` reads "``b**2`` groups").

    ``train_form='group'`` is the reference code's behaviour, for
    reproducing it: in training mode the forward is the group convolution
    ``conv(x, weight * U)``; in eval mode and after deploy it is the partial
    convolution above, so the two modes compute different functions.

    For gates out of order (a 1 before a 0) channel 0's block is a strided
    set of channels, not a prefix; the layer still works and still deploys
    exactly (by index), and :meth:`ordering_loss` pushes towards order.

Inside a PAT layer
    A PAT layer (PAT_ch, PAT_sf) built with a DPConv uses it to set its
    channel split (:mod:`~mmpartial.models.layers.pat_dpconv`): the layer
    reads :meth:`conv_indicator` and :meth:`conv_part`, and deploys the
    DPConv itself (see :meth:`attach`).

Widths that are not a power of two
    Write ``C = 2**a * m`` with ``m`` odd. The first ``a`` gates are exact
    halvings as above; the last ``K - a = ceil(log2(m))`` gates build a
    ``2**(K - a)`` mask that is cropped to its top-left ``m x m``::

        U = U_1 (x) ... (x) U_a (x) crop_m(U_{a+1} (x) ... (x) U_K)

    For ordered gates with ``z`` zeros the convolved channels are
    ``C / 2**z`` when ``z <= a`` (e.g. 48 = 16 * 3: 48, 24, 12, 6, 3) and
    ``min(2**(K - z), m)`` beyond (3, then 2, then 1 for 48). So every width
    divisible by 4, as all PartialNet widths are, reaches the standard 1/4
    split exactly, and a power of two gives the paper's layer unchanged. In
    every case the convolved channels are channel 0's block, ``sum(r)``.
"""
import math
from functools import reduce

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmpartial.utils.torch_compat import register_load_state_dict_pre_hook


TRAIN_FORMS = ('partial', 'group')


class BinarizeSTE(torch.autograd.Function):
    """``s = (sign(g) + 1) / 2`` with a straight-through gradient.

    ``sign(0)`` counts as ``+1``: ``s = 1`` where ``g >= 0``, so ``s`` is
    never 0.5 and an exactly-zero gate keeps its channels (a full
    convolution is the safe default). Backward passes the incoming gradient
    unchanged where ``|g| < 1`` and zero where ``|g| >= 1``, so a gate driven
    far past zero stops moving.
    """

    @staticmethod
    def forward(ctx, gate):
        ctx.save_for_backward(gate)
        return (gate >= 0).to(gate.dtype)

    @staticmethod
    def backward(ctx, grad):
        gate, = ctx.saved_tensors
        return grad * (gate.abs() < 1).to(grad.dtype)


def binarize_gate(gate):
    """Apply :class:`BinarizeSTE` to a gate tensor."""
    return BinarizeSTE.apply(gate)


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f'{name} must be an int >= {minimum}, got '
                        f'{type(value).__name__} {value!r}')
    if value < minimum:
        raise ValueError(f'{name} must be an int >= {minimum}, got {value}')


class DPConv(nn.Module):
    """Dynamic partial convolution: a kxk convolution over the first
    ``conv_channels`` channels, with that number learned by binary gates.

    See the module docstring for the mask, the training form and widths that
    are not a power of two. ``padding = kernel_size // 2``, stride 1, no
    bias: the output has the input's shape.

    Warm-up: while ``gates_frozen`` is True, the forward, :meth:`complexity`
    and :meth:`ordering_loss` see the gates with a zero gradient, so the
    split stays where it is (e.g. ``init_split``); a hook sets it per epoch.
    The gate stays in the autograd graph (gradient zeros, not None), so DDP
    without ``find_unused_parameters`` is not upset. The parameter is named
    ``gate``; as mmengine's ``custom_keys`` match substrings, pick a key
    that does not also catch PATChannel's gate modules, e.g.
    ``'dpconv.gate'`` for the DPConv of a PAT layer.

    Args:
        channels (int): Input and output channels, >= 2.
        kernel_size (int): Positive odd kernel size. Defaults to 3.
        init_gate (float): Initial magnitude ``|g|`` of every gate, in
            (0, 1) so that the estimator passes gradients. Zero gates start
            at ``-init_gate``, the others at ``+init_gate``. Defaults to 1e-8.
        init_split (float | str, optional): Initial ratio ``2**-z``: the
            first ``z`` gates start at 0, the rest at 1 (ordered). ``1.``
            starts as a full convolution; ``0.25`` as PartialNet's fixed
            partial convolution over ``channels // 4`` channels (exactly, for
            widths divisible by 4). ``z`` must be in ``[min_zeros,
            max_zeros]``. ``'random'``: every free gate gets a random sign
            (the reference code's start). Defaults to None: ``0.25``, or the
            nearest ratio the fixed gates allow.
        min_zeros (int): The first ``min_zeros`` gates are fixed at 0 (no
            parameter): the ratio is at most ``2**-min_zeros``. Defaults to 0.
        max_zeros (int, optional): The gates after the first ``max_zeros``
            are fixed at 1. Defaults to None (``K``: none fixed).
        train_form (str): ``'partial'`` (the training forward is the
            deployed partial convolution) or ``'group'`` (the reference's:
            ``weight * U`` in training mode). Defaults to ``'partial'``.
        gates_frozen (bool): Start with frozen gates (warm-up). Defaults to
            False.
        deploy (bool): Build the deploy form (see :meth:`switch_to_deploy`).
            Its width is the learned one, known only to a checkpoint: the
            layer gets its partial convolution while a deploy checkpoint is
            loaded, and cannot run before. Defaults to False.
    """

    _arg_names = ('channels', 'kernel_size', 'init_gate', 'init_split',
                  'min_zeros', 'max_zeros', 'train_form', 'gates_frozen',
                  'deploy')

    def __init__(self, channels, kernel_size=3, init_gate=1e-8,
                 init_split=None, min_zeros=0, max_zeros=None,
                 train_form='partial', gates_frozen=False, deploy=False,
                 **kwargs):
        super().__init__()
        if kwargs:
            raise TypeError(f'DPConv got unexpected keyword argument(s) '
                            f'{sorted(kwargs)}; valid arguments are '
                            f'{", ".join(self._arg_names)}')
        _check_int('channels', channels, 2)
        _check_int('kernel_size', kernel_size, 1)
        if kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be a positive odd int (1, 3, '
                             f'5, ...), got {kernel_size}')
        if isinstance(init_gate, bool) or not isinstance(init_gate,
                                                         (int, float)):
            raise TypeError(f'init_gate must be a float in (0, 1), got '
                            f'{type(init_gate).__name__} {init_gate!r}')
        if not 0 < init_gate < 1:
            raise ValueError(f'init_gate must be in (0, 1) (the estimator '
                             f'passes no gradient from |g| >= 1), got '
                             f'{init_gate}')
        if not isinstance(gates_frozen, bool):
            raise TypeError(f'gates_frozen must be a bool, got '
                            f'{gates_frozen!r}')
        if train_form not in TRAIN_FORMS:
            raise ValueError(f'train_form must be one of {TRAIN_FORMS}, got '
                             f'{train_form!r}')

        self.channels = channels
        self.kernel_size = kernel_size
        self.padding = kernel_size // 2
        self.train_form = train_form
        # K = ceil(log2(C)); a = how many halvings divide C exactly; m = the
        # odd rest of C, covered by the last K - a gates' cropped mask.
        self.total_gates = (channels - 1).bit_length()
        self.exact_gates = (channels & -channels).bit_length() - 1
        self.odd_factor = channels >> self.exact_gates
        _check_int('min_zeros', min_zeros, 0)
        if max_zeros is None:
            max_zeros = self.total_gates
        _check_int('max_zeros', max_zeros, min_zeros)
        if max_zeros > self.total_gates:
            raise ValueError(f'max_zeros must be at most the '
                             f'{self.total_gates} gates of DPConv({channels})'
                             f', got {max_zeros}')
        self.min_zeros = min_zeros
        self.max_zeros = max_zeros
        self.num_gates = max_zeros - min_zeros
        zeros = self._parse_init_split(init_split)

        self.weight = nn.Parameter(
            torch.empty(channels, channels, kernel_size, kernel_size))
        nn.init.trunc_normal_(self.weight, std=.02)
        if zeros == 'random':
            signs = torch.randint(0, 2, (self.num_gates, )).float() * 2 - 1
        else:
            signs = torch.ones(self.num_gates)
            signs[:zeros - min_zeros] = -1.
        self.gate = nn.Parameter(signs * init_gate)
        self.gates_frozen = gates_frozen
        self.attached = False
        self.deploy = False
        register_load_state_dict_pre_hook(self, _resize_deployed)
        if deploy:
            self.switch_to_deploy()
            # The width comes with the checkpoint (see _resize_deployed).
            del self.conv
            self.conv = None

    def _parse_init_split(self, init_split):
        """Return the number of zero gates for ``init_split`` (or
        ``'random'``)."""
        low, high = self.min_zeros, self.max_zeros
        if init_split is None:
            return min(max(2, low), high)
        if isinstance(init_split, str) and init_split == 'random':
            return 'random'
        msg = (f'init_split must be 2**-z for an integer z in [{low}, '
               f'{high}] (1/{2**low}, ..., 1/{2**high}) or \'random\' for '
               f'DPConv({self.channels}, min_zeros={low}, max_zeros={high}),'
               f' got {init_split!r}')
        if isinstance(init_split, bool) or not isinstance(init_split,
                                                          (int, float)):
            raise TypeError(msg)
        if not 0 < init_split <= 1:
            raise ValueError(msg)
        zeros = round(-math.log2(init_split))
        if not low <= zeros <= high or 2.**-zeros != init_split:
            raise ValueError(msg)
        return zeros

    def attach(self):
        """Mark this DPConv as the split of a PAT layer.

        The layer then owns the deployed convolution: at deploy time it
        takes the convolved block of :attr:`weight` itself and calls
        :meth:`deploy_split`; this layer's own :meth:`switch_to_deploy`
        does nothing (a backbone calls it on every submodule, children
        first, when the gates are still needed). After deploy it keeps only
        ``split_stats`` (what :meth:`split` reports) and runs no forward.
        """
        self.attached = True

    def _live_gate(self):
        if self.deploy:
            raise RuntimeError('DPConv has no gates after switch_to_deploy()')
        if self.gates_frozen:
            # Zero gradient rather than none, see the class docstring.
            return self.gate.detach() + self.gate * 0.
        return self.gate

    def gate_bits(self):
        """``s`` of all ``K`` gates: the fixed zeros, the binarised free
        gates, the fixed ones (differentiable through the estimator)."""
        s = binarize_gate(self._live_gate())
        return torch.cat((s.new_zeros(self.min_zeros), s,
                          s.new_ones(self.total_gates - self.max_zeros)))

    def _kron_factors(self, s, corner):
        """Kronecker product of ``s_k * ones(2, 2) + (1 - s_k) * corner``,
        the inner ``K - a`` factors cropped to ``m x m``.

        Returns:
            tuple[Tensor, Tensor]: The ``2**a`` outer product and the
            ``m x m`` inner one; the mask is their Kronecker product.
        """
        factors = s[:, None, None] + (1 - s)[:, None, None] * corner
        one = s.new_ones(1, 1)
        outer = reduce(torch.kron, factors[:self.exact_gates], one)
        inner = reduce(torch.kron, factors[self.exact_gates:], one)
        return outer, inner[:self.odd_factor, :self.odd_factor]

    def mask(self):
        """The paper's ``C x C`` mask ``U`` (0/1, differentiable through the
        estimator)."""
        s = self.gate_bits()
        return torch.kron(*self._kron_factors(s, torch.eye(2).to(s)))

    def conv_mask(self):
        """The ``C x C`` mask ``M = diag(r) @ U`` the forward applies to the
        weight; its diagonal ``r`` marks the convolved channels."""
        s = self.gate_bits()
        corner = torch.tensor([[1., 0.], [0., 0.]]).to(s)
        return torch.kron(*self._kron_factors(s, corner))

    def conv_indicator(self):
        """``r``: 1 on the convolved channels, 0 elsewhere, as a ``(C, )``
        tensor (the diagonal of :meth:`conv_mask`, differentiable through
        the estimator). The Kronecker product of ``[1, s_k]`` vectors, the
        inner part cropped to ``m``."""
        s = self.gate_bits()
        factors = torch.stack((torch.ones_like(s), s), dim=1)
        one = s.new_ones(1)
        outer = reduce(torch.kron, factors[:self.exact_gates], one)
        inner = reduce(torch.kron, factors[self.exact_gates:], one)
        return torch.kron(outer, inner[:self.odd_factor])

    def conv_part(self, x):
        """``conv(x, weight * M)``: the convolution of the convolved
        channels, zero on the others (training form, no pass-through)."""
        weight = self.weight * self.conv_mask()[:, :, None, None].to(
            self.weight)
        return F.conv2d(x, weight, padding=self.padding)

    def forward(self, x):
        if self.deploy:
            return self._forward_deploy(x)
        if self.training and self.train_form == 'group':
            weight = self.weight * self.mask()[:, :, None, None].to(
                self.weight)
            return F.conv2d(x, weight, padding=self.padding)
        passed = (1 - self.conv_indicator()).to(x.dtype)[:, None, None]
        return self.conv_part(x) + x * passed

    def _forward_deploy(self, x):
        if self.conv is None:
            raise RuntimeError(
                'this DPConv was built with deploy=True and has no width yet'
                if not self.attached else
                'this DPConv sets the split of a PAT layer, which runs the '
                'deployed convolution; it has no forward of its own')
        n = self.conv.weight.shape[0]
        if self.conv_index is None:
            x1, x2 = torch.split(x, [n, self.channels - n], 1)
            return torch.cat((self.conv(x1), x2), 1)
        index = self.conv_index
        return x.index_copy(1, index, self.conv(x.index_select(1, index)))

    def complexity(self):
        """``nnz(U)`` as a scalar tensor, differentiable through the
        estimator: ``2**(a + sum(s_1..s_a)) * nnz(inner)``.

        For ``C = 2**K`` this is the paper's ``2**(K + sum(s))``; in general
        it is the number of nonzeros of the cropped mask (``C**2 / 2**z`` for
        ordered gates with ``z <= a`` zeros). After deploy: a constant.
        """
        if self.deploy:
            return self.split_stats[3].float()
        s = self.gate_bits()
        _, inner = self._kron_factors(s, torch.eye(2).to(s))
        return torch.exp2(self.exact_gates + s[:self.exact_gates].sum()) * \
            inner.sum()

    def budget_complexity(self, budget):
        """The paper's budget share of this layer, ``C**2 / budget**2``
        (in the units of :meth:`complexity`)."""
        return self.channels**2 / budget**2

    def ordering_loss(self):
        """Penalty for gates that do not read ``0...0 1...1``.

        The first offending gate is the first one with ``s = 0`` that comes
        after a gate with ``s = 1``. The loss is the sum of ``|g|`` over that
        gate and every gate after it, and 0 (with a graph) when the gates
        are ordered or after deploy. E.g. ``g = [0.3, -0.2, 0.1, -0.4]``
        (``s = [1, 0, 1, 0]``) gives ``0.2 + 0.1 + 0.4``. Fixed gates never
        offend (zeros first, ones last).
        """
        if self.deploy:
            return self.split_stats.new_zeros((), dtype=torch.float32)
        gate = self._live_gate()
        ones = gate.detach() >= 0
        offending = ~ones & (ones.cumsum(0) > 0)
        from_first = offending.cumsum(0) > 0
        return (gate.abs() * from_first).sum()

    @torch.no_grad()
    def split_index(self):
        """The convolved channels and the others, in increasing order.

        Returns:
            tuple[Tensor, Tensor]: Two int64 index tensors; the first is
            ``arange(conv_channels)`` for ordered gates.
        """
        r = self.conv_indicator() > .5
        return r.nonzero().flatten(), (~r).nonzero().flatten()

    @torch.no_grad()
    def split(self):
        """The current split, from the binarised gates.

        Returns:
            dict: ``channels``; ``conv_channels`` (convolved, the rest pass
            through or go to the attention); ``ratio`` (``conv_channels /
            channels``); ``num_groups`` (blocks of ``U``: the groups of the
            paper's training form); ``zero_gates`` (fixed ones included);
            ``ordered`` (gates read ``0...0 1...1``).
        """
        if self.deploy:
            num_groups, zero_gates, ordered, _, n = self.split_stats.tolist()
            return dict(channels=self.channels, conv_channels=n,
                        ratio=n / self.channels, num_groups=num_groups,
                        zero_gates=zero_gates, ordered=bool(ordered))
        mask = self.mask()
        conv_channels = int(self.conv_indicator().sum().item())
        ones = self.gate >= 0
        return dict(
            channels=self.channels,
            conv_channels=conv_channels,
            ratio=conv_channels / self.channels,
            # U relates channels of the same block; summing 1 / block size
            # over all channels counts the blocks.
            num_groups=round((1 / mask.sum(1)).sum().item()),
            zero_gates=int((self.gate_bits() < .5).sum().item()),
            ordered=bool((ones[1:] >= ones[:-1]).all().item()))

    @torch.no_grad()
    def switch_to_deploy(self):
        """Replace the masked convolution by a plain ``nn.Conv2d`` over the
        ``conv_channels`` convolved channels (the first ones, for ordered
        gates; the others are passed through) and delete the gates and the
        full weight. The output equals the eval-mode output before.

        The deploy state dict holds ``conv.weight``, ``conv_index`` (only
        for gates out of order) and ``split_stats`` (the number of groups,
        zero gates, ordered, ``nnz(U)``, convolved channels: what
        :meth:`split` and :meth:`complexity` report without the gates).

        A DPConv that sets a PAT layer's split (:meth:`attach`) is deployed
        by that layer; here it is left as it is.
        """
        if self.deploy or self.attached:
            return
        index, _ = self.split_index()
        n = index.numel()
        self.conv = nn.Conv2d(n, n, self.kernel_size, padding=self.padding,
                              bias=False).to(self.weight)
        # Within channel 0's block M is all ones, so this is the plain
        # weight block.
        self.conv.weight.copy_(self.weight[index][:, index])
        prefix = bool((index == torch.arange(n, device=index.device)).all())
        self.register_buffer('conv_index', None if prefix else index)
        self.deploy_split()

    @torch.no_grad()
    def deploy_split(self):
        """Record the split in ``split_stats``, delete the gates and the
        full weight; the layer is then in deploy form. Called by
        :meth:`switch_to_deploy`, or by the PAT layer this DPConv is
        attached to once it has taken the weights it needs."""
        if self.deploy:
            return
        split = self.split()
        self.register_buffer('split_stats', torch.tensor(
            [split['num_groups'], split['zero_gates'], int(split['ordered']),
             round(self.complexity().item()), split['conv_channels']],
            device=self.weight.device))
        if self.attached:
            self.conv = None
            self.conv_index = None
        del self.weight, self.gate
        self.deploy = True

    def extra_repr(self):
        split = self.split()
        text = (f'{self.channels}, kernel_size={self.kernel_size}, '
                f'conv_channels={split["conv_channels"]}')
        if self.deploy:
            return text + ', deploy=True'
        fixed = '' if self.num_gates == self.total_gates else \
            f', zeros in [{self.min_zeros}, {self.max_zeros}]'
        return text + (f', gates={self.num_gates}{fixed}, '
                       f'gates_frozen={self.gates_frozen}')


def _resize_deployed(layer, state_dict, prefix, *args):
    """Give a deployed DPConv the width and index of an incoming checkpoint.

    A model built with ``deploy=True`` cannot know the learned width of its
    partial convolutions; the checkpoint's ``conv.weight`` tells it (and
    ``conv_index`` whether the channels are a prefix). Shapes that do not
    fit a DPConv of this many channels are left for ``load_state_dict`` to
    report. Nothing to do for a DPConv attached to a PAT layer.
    """
    if not layer.deploy or layer.attached:
        return
    weight = state_dict.get(prefix + 'conv.weight')
    k = layer.kernel_size
    if weight is None or weight.dim() != 4 or weight.shape[2:] != (k, k) or \
            weight.shape[0] != weight.shape[1] or \
            not 0 < weight.shape[0] <= layer.channels:
        return
    n = weight.shape[0]
    old = layer.conv.weight if layer.conv is not None else None
    if old is None or old.shape[0] != n:
        device = layer.split_stats.device
        dtype = old.dtype if old is not None else torch.get_default_dtype()
        layer.conv = nn.Conv2d(n, n, k, padding=layer.padding,
                               bias=False).to(device, dtype)
        if k > 1:
            # A deployed backbone keeps its spatial kernels channels_last.
            layer.conv.weight.data = layer.conv.weight.data.contiguous(
                memory_format=torch.channels_last)
    index = state_dict.get(prefix + 'conv_index')
    if index is None:
        layer.conv_index = None
    elif index.dim() == 1 and index.numel() == n:
        layer.register_buffer('conv_index', torch.empty(
            n, dtype=index.dtype, device=layer.split_stats.device))
