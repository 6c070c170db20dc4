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

Training form = deploy form (a partial convolution)
    The paper trains with ``weight * U`` (a group convolution over all
    channels) but deploys a partial convolution over the first
    ``C / 2**z`` channels with the other channels passed through. The two
    differ, so an exact ``switch_to_deploy`` needs one of them to change.
    Here the training forward is the partial convolution itself, which keeps
    the paper's meaning (the learned ratio is the share of channels the
    deployed layer convolves, and deploying saves MACs)::

        M = diag(r) @ U,  r = diag(M) = U[0]    (channel 0's block)
        y = conv(x, weight * M) + (1 - r) * x

    ``r`` marks the convolved channels; the others are copied unchanged.
    ``M`` is built as the Kronecker product of ``[[1, s_k], [s_k, s_k]]``
    (equal to ``diag(r) @ U`` for binary ``s``), so every entry is linear in
    each ``s_k`` and the straight-through gradient of a gate is exactly the
    first-order change of the loss when that gate flips. ``U`` itself is
    still what :meth:`complexity` counts (the paper's ``nnz(U)``, whose
    budget ``C**2 / b**2`` reads "``b**2`` groups").

    For gates out of order (a 1 before a 0) channel 0's block is a strided
    set of channels, not a prefix; the layer still works and still deploys
    exactly (by index), and :meth:`ordering_loss` pushes towards order.

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
    without ``find_unused_parameters`` is not upset. Weight decay on the
    gates should be off: decay never flips a sign but shrinks the gates
    towards the flip point. The parameter is named ``gate``; as mmengine's
    ``custom_keys`` match substrings, pick a key that does not also catch
    PATChannel's ``gate`` (a StylePoolGate), e.g. ``'conv.gate'`` for a
    DPConv installed as a PAT layer's ``conv``.

    Args:
        channels (int): Input and output channels, >= 2.
        kernel_size (int): Positive odd kernel size. Defaults to 3.
        init_gate (float): Initial magnitude ``|g|`` of every gate, in
            (0, 1) so that the estimator passes gradients. Zero gates start
            at ``-init_gate``, the others at ``+init_gate``. Defaults to 1e-8.
        init_split (float, optional): Initial ratio ``2**-z``: the first
            ``z`` gates start at 0, the rest at 1 (ordered). ``1.`` starts as
            a full convolution; ``0.25`` as PartialNet's fixed partial
            convolution over ``channels // 4`` channels (exactly, for widths
            divisible by 4). ``z`` must be in ``[0, K]``. Defaults to None:
            ``0.25``, or ``0.5`` for ``channels == 2`` (one gate only).
        gates_frozen (bool): Start with frozen gates (warm-up). Defaults to
            False.
        deploy (bool): Build the deploy form (see :meth:`switch_to_deploy`)
            at the ``init_split``. Loading a deploy checkpoint resizes the
            partial convolution to the checkpoint's learned width (and
            index), which is known only there. Defaults to False.
    """

    _arg_names = ('channels', 'kernel_size', 'init_gate', 'init_split',
                  'gates_frozen', 'deploy')

    def __init__(self, channels, kernel_size=3, init_gate=1e-8,
                 init_split=None, gates_frozen=False, deploy=False,
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

        self.channels = channels
        self.kernel_size = kernel_size
        self.padding = kernel_size // 2
        # K = ceil(log2(C)); a = how many halvings divide C exactly; m = the
        # odd rest of C, covered by the last K - a gates' cropped mask.
        self.num_gates = (channels - 1).bit_length()
        self.exact_gates = (channels & -channels).bit_length() - 1
        self.odd_factor = channels >> self.exact_gates
        zeros = self._parse_init_split(init_split)

        self.weight = nn.Parameter(
            torch.empty(channels, channels, kernel_size, kernel_size))
        nn.init.trunc_normal_(self.weight, std=.02)
        signs = torch.ones(self.num_gates)
        signs[:zeros] = -1.
        self.gate = nn.Parameter(signs * init_gate)
        self.gates_frozen = gates_frozen
        self.deploy = False
        self.register_load_state_dict_pre_hook(_resize_deployed)
        if deploy:
            self.switch_to_deploy()

    def _parse_init_split(self, init_split):
        """Return the number of leading zero gates for ``init_split``."""
        if init_split is None:
            return min(2, self.num_gates)
        msg = (f'init_split must be 2**-z for an integer z in [0, '
               f'{self.num_gates}] (1, 1/2, ..., 1/{2**self.num_gates}) for '
               f'channels={self.channels}, got {init_split!r}')
        if isinstance(init_split, bool) or not isinstance(init_split,
                                                          (int, float)):
            raise TypeError(msg)
        if not 0 < init_split <= 1:
            raise ValueError(msg)
        zeros = round(-math.log2(init_split))
        if zeros > self.num_gates or 2.**-zeros != init_split:
            raise ValueError(msg)
        return zeros

    def _live_gate(self):
        if self.deploy:
            raise RuntimeError('DPConv has no gates after switch_to_deploy()')
        if self.gates_frozen:
            # Zero gradient rather than none, see the class docstring.
            return self.gate.detach() + self.gate * 0.
        return self.gate

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
        s = binarize_gate(self._live_gate())
        return torch.kron(*self._kron_factors(s, torch.eye(2).to(s)))

    def conv_mask(self):
        """The ``C x C`` mask ``M = diag(r) @ U`` the forward applies to the
        weight; its diagonal ``r`` marks the convolved channels."""
        s = binarize_gate(self._live_gate())
        corner = torch.tensor([[1., 0.], [0., 0.]]).to(s)
        return torch.kron(*self._kron_factors(s, corner))

    def forward(self, x):
        if self.deploy:
            return self._forward_deploy(x)
        mask = self.conv_mask()
        weight = self.weight * mask[:, :, None, None].to(self.weight)
        passed = (1 - mask.diagonal()).to(x.dtype)[:, None, None]
        return F.conv2d(x, weight, padding=self.padding) + x * passed

    def _forward_deploy(self, x):
        if self.conv_index is None:
            x1, x2 = torch.split(
                x, [self.conv_channels, self.channels - self.conv_channels],
                1)
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
            return self.split_stats[3].to(self.conv.weight.dtype)
        s = binarize_gate(self._live_gate())
        _, inner = self._kron_factors(s, torch.eye(2).to(s))
        return torch.exp2(self.exact_gates + s[:self.exact_gates].sum()) * \
            inner.sum()

    def ordering_loss(self):
        """Penalty for gates that do not read ``0...0 1...1``.

        The first offending gate is the first one with ``s = 0`` that comes
        after a gate with ``s = 1``. The loss is the sum of ``|g|`` over that
        gate and every gate after it, and 0 (with a graph) when the gates
        are ordered or after deploy. E.g. ``g = [0.3, -0.2, 0.1, -0.4]``
        (``s = [1, 0, 1, 0]``) gives ``0.2 + 0.1 + 0.4``.
        """
        if self.deploy:
            return self.conv.weight.new_zeros(())
        gate = self._live_gate()
        ones = gate.detach() >= 0
        offending = ~ones & (ones.cumsum(0) > 0)
        from_first = offending.cumsum(0) > 0
        return (gate.abs() * from_first).sum()

    @torch.no_grad()
    def split(self):
        """The current split, from the binarised gates.

        Returns:
            dict: ``channels``; ``conv_channels`` (convolved, the rest pass
            through); ``ratio`` (``conv_channels / channels``); ``num_groups``
            (blocks of ``U``: the groups of the paper's training form);
            ``zero_gates``; ``ordered`` (gates read ``0...0 1...1``).
        """
        if self.deploy:
            num_groups, zero_gates, ordered, _ = self.split_stats.tolist()
            return dict(channels=self.channels,
                        conv_channels=self.conv_channels,
                        ratio=self.conv_channels / self.channels,
                        num_groups=num_groups, zero_gates=zero_gates,
                        ordered=bool(ordered))
        mask = self.mask()
        conv_channels = int(self.conv_mask().diagonal().sum().item())
        ones = self.gate >= 0
        return dict(
            channels=self.channels,
            conv_channels=conv_channels,
            ratio=conv_channels / self.channels,
            # U relates channels of the same block; summing 1 / block size
            # over all channels counts the blocks.
            num_groups=round((1 / mask.sum(1)).sum().item()),
            zero_gates=int((~ones).sum().item()),
            ordered=bool((ones[1:] >= ones[:-1]).all().item()))

    @torch.no_grad()
    def switch_to_deploy(self):
        """Replace the masked convolution by a plain ``nn.Conv2d`` over the
        ``conv_channels`` convolved channels (the first ones, for ordered
        gates; the others are passed through) and delete the gates and the
        full weight. The output equals the eval-mode output before.

        The deploy state dict holds ``conv.weight``, ``conv_index`` (only
        for gates out of order) and ``split_stats`` (the number of groups,
        zero gates, ordered, ``nnz(U)``: what :meth:`split` and
        :meth:`complexity` report without the gates).
        """
        if self.deploy:
            return
        mask = self.conv_mask()
        index = mask.diagonal().nonzero().flatten()
        n = index.numel()
        self.conv = nn.Conv2d(n, n, self.kernel_size, padding=self.padding,
                              bias=False).to(self.weight)
        # Within channel 0's block M is all ones, so this is the plain
        # weight block.
        self.conv.weight.copy_(self.weight[index][:, index])
        self.conv_channels = n
        prefix = bool((index == torch.arange(n, device=index.device)).all())
        self.register_buffer('conv_index', None if prefix else index)
        split = self.split()
        self.register_buffer('split_stats', torch.tensor(
            [split['num_groups'], split['zero_gates'], int(split['ordered']),
             round(self.complexity().item())],
            device=self.weight.device))
        del self.weight, self.gate
        self.deploy = True

    def extra_repr(self):
        split = self.split()
        text = (f'{self.channels}, kernel_size={self.kernel_size}, '
                f'conv_channels={split["conv_channels"]}')
        if self.deploy:
            return text + ', deploy=True'
        return text + (f', gates={self.num_gates}, '
                       f'gates_frozen={self.gates_frozen}')


def _resize_deployed(layer, state_dict, prefix, *args):
    """Give a deployed DPConv the width and index of an incoming checkpoint.

    A model built with ``deploy=True`` cannot know the learned width of its
    partial convolutions; the checkpoint's ``conv.weight`` tells it (and
    ``conv_index`` whether the channels are a prefix). Shapes that do not
    fit a DPConv of this many channels are left for ``load_state_dict`` to
    report.
    """
    if not layer.deploy:
        return
    weight = state_dict.get(prefix + 'conv.weight')
    k = layer.kernel_size
    if weight is None or weight.dim() != 4 or weight.shape[2:] != (k, k) or \
            weight.shape[0] != weight.shape[1] or \
            not 0 < weight.shape[0] <= layer.channels:
        return
    n = weight.shape[0]
    old = layer.conv.weight
    if n != layer.conv_channels:
        layer.conv = nn.Conv2d(n, n, k, padding=layer.padding,
                               bias=False).to(old)
        if old.dim() == 4 and not old.is_contiguous() and \
                old.is_contiguous(memory_format=torch.channels_last):
            # Keep the layout the deployed backbone chose for its kernels.
            layer.conv.weight.data = layer.conv.weight.data.contiguous(
                memory_format=torch.channels_last)
        layer.conv_channels = n
    index = state_dict.get(prefix + 'conv_index')
    if index is None:
        layer.conv_index = None
    elif index.dim() == 1 and index.numel() == n:
        layer.register_buffer('conv_index', torch.empty(
            n, dtype=index.dtype, device=old.device))
