"""DPConv: a convolution whose partial-channel split ratio is learned.

``K = ceil(log2(C))`` gates ``g`` are binarised (:class:`BinarizeSTE`)
into ``s`` in {0, 1}. The paper's mask ``U`` is the Kronecker product of
``s_k * ones(2, 2) + (1 - s_k) * eye(2)``: for ordered gates ``0...0 1...1``
(``z`` zeros), ``eye(2**z) (x) ones(C / 2**z)``. For ``C = 2**a * m``, ``m``
odd, the product of the last ``K - a`` factors is cropped to ``m x m``, so
any width divisible by 4 reaches the 1/4 split exactly. The first
``min_zeros`` gates may be fixed at 0, those after ``max_zeros`` at 1.

The layer convolves channel 0's block of ``U`` and passes the others
through, as it deploys (a partial convolution)::

    r = U[0],  M = diag(r) @ U,  y = conv(x, weight * M) + (1 - r) * x

``M`` is built from the factors ``[[1, s_k], [s_k, s_k]]``, linear in each
``s_k``, so a gate's straight-through gradient is the first-order change of
the loss when it flips. :meth:`complexity` counts ``nnz(U)``, as in the paper.
``train_form='group'`` (the reference code's) trains ``conv(x, weight *
U)`` instead; eval and deploy stay partial. Gates out of order deploy
exactly by index; :meth:`ordering_loss` pushes towards order. In a PAT
layer (:mod:`~mmpartial.models.layers.pat_dpconv`) the DPConv only sets
the split (:meth:`attach`).
"""
import math
from functools import reduce

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmpartial.utils.torch_compat import register_load_state_dict_pre_hook

TRAIN_FORMS = ('partial', 'group')


class BinarizeSTE(torch.autograd.Function):
    """``s = (sign(g) + 1) / 2`` with a straight-through gradient where
    ``|g| < 1`` (a gate driven far past zero stops moving). ``sign(0)`` is
    ``+1``: a zero gate keeps its channels, the safe default."""

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


def check_number(what, value, valid, ok, kind=(int, float)):
    """Raise TypeError unless ``value`` is a ``kind`` (bools are not), and
    ValueError unless ``ok(value)``; both say ``'{what} must be {valid}'``.
    """
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f'{what} must be {valid}, got '
                        f'{type(value).__name__} {value!r}')
    if not ok(value):
        raise ValueError(f'{what} must be {valid}, got {value!r}')


def split_zeros(ratio):
    """``z`` for a number ``ratio == 2**-z`` (``z >= 0``), else None."""
    if not 0 < ratio <= 1:
        return None
    zeros = round(-math.log2(ratio))
    return zeros if 2.**-zeros == ratio else None


def checkpoint_width(state_dict, key, k, limit):
    """``n`` of an ``n x n x k x k`` kernel ``state_dict[key]``, ``0 < n <=
    limit``; else None (``load_state_dict`` reports what does not fit)."""
    weight = state_dict.get(key)
    if weight is None or weight.dim() != 4 or weight.shape[2:] != (k, k) \
            or weight.shape[0] != weight.shape[1] \
            or not 0 < weight.shape[0] <= limit:
        return None
    return weight.shape[0]


def fit_index_buffer(module, name, incoming, size, device):
    """Make index buffer ``name`` None, or empty with ``size`` entries, as
    the ``incoming`` one of a checkpoint is."""
    if incoming is None:
        module.register_buffer(name, None)
    elif incoming.shape == (size, ):
        module.register_buffer(name, torch.empty(
            size, dtype=incoming.dtype, device=device))


class DPConv(nn.Module):
    """Dynamic partial convolution: a kxk convolution (stride 1, same
    padding, no bias) over ``conv_channels`` channels, that number learned
    by binary gates (see the module docstring).

    Frozen gates (a warm-up) get a zero gradient, not None, for DDP without
    ``find_unused_parameters``. mmengine's ``custom_keys`` match substrings:
    ``'dpconv.gate'`` names the gates, ``'.gate'`` also PATChannel's.

    Args:
        channels (int): Input and output channels, >= 2.
        kernel_size (int): Positive odd kernel size. Defaults to 3.
        init_gate (float): Initial ``|g|``, in (0, 1) so that the estimator
            passes gradients. Defaults to 1e-8.
        init_split (float | str, optional): Initial ratio ``2**-z`` (the
            first ``z`` gates 0), ``z`` in ``[min_zeros, max_zeros]``, or
            ``'random'`` signs (the reference code's start). Defaults to
            None: 1/4, or the nearest allowed ratio.
        min_zeros (int): Gates fixed at 0 first. Defaults to 0.
        max_zeros (int, optional): Gates after it fixed at 1. Defaults to
            None (``K``: none).
        train_form (str): ``'partial'`` or ``'group'``. Defaults to
            ``'partial'``.
        gates_frozen (bool): Start with frozen gates. Defaults to False.
        deploy (bool): Build the deploy form, which gets its width from the
            deploy checkpoint it loads. Defaults to False.
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
        check_number('channels', channels, 'an int >= 2', lambda v: v >= 2,
                     int)
        check_number('kernel_size', kernel_size, 'an odd int >= 1 (1, 3, 5,'
                     ' ...)', lambda v: v >= 1 and v % 2, int)
        check_number('init_gate', init_gate, 'a number in (0, 1) (the '
                     'estimator passes no gradient from |g| >= 1)',
                     lambda v: 0 < v < 1)
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
        # K = ceil(log2(C)); a = the exact halvings of C; m = its odd rest.
        self.total_gates = (channels - 1).bit_length()
        self.exact_gates = (channels & -channels).bit_length() - 1
        self.odd_factor = channels >> self.exact_gates
        check_number('min_zeros', min_zeros, 'an int >= 0', lambda v: v >= 0,
                     int)
        total = self.total_gates
        max_zeros = total if max_zeros is None else max_zeros
        check_number('max_zeros', max_zeros, f'an int in [{min_zeros}, '
                     f'{total}] (at most the gates of DPConv({channels}))',
                     lambda v: min_zeros <= v <= total, int)
        self.min_zeros, self.max_zeros = min_zeros, max_zeros
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
            del self.conv  # sized by the checkpoint (_resize_deployed)
            self.conv = None

    def _parse_init_split(self, init_split):
        """The zero gates ``init_split`` starts with, or ``'random'``."""
        low, high = self.min_zeros, self.max_zeros
        if init_split is None:
            return min(max(2, low), high)
        if isinstance(init_split, str) and init_split == 'random':
            return 'random'
        check_number(
            'init_split', init_split, f"2**-z for an integer z in [{low}, "
            f"{high}] (1/{2**low}, ..., 1/{2**high}) or 'random' for "
            f'DPConv({self.channels}, min_zeros={low}, max_zeros={high})',
            lambda v: split_zeros(v) in range(low, high + 1))
        return split_zeros(init_split)

    def attach(self):
        """Make this DPConv the split of a PAT layer, which deploys it: its
        own :meth:`switch_to_deploy` (called children first by a backbone,
        while the layer needs the gates) then does nothing."""
        self.attached = True

    def _live_gate(self):
        if self.deploy:
            raise RuntimeError('DPConv has no gates after switch_to_deploy()')
        if self.gates_frozen:
            return self.gate.detach() + self.gate * 0.  # a zero gradient
        return self.gate

    def gate_bits(self):
        """``s`` of all ``K`` gates, the fixed ones included."""
        s = binarize_gate(self._live_gate())
        return torch.cat((s.new_zeros(self.min_zeros), s,
                          s.new_ones(self.total_gates - self.max_zeros)))

    def _kron(self, factors):
        """Kronecker products of per-gate vectors or matrices: the exact
        gates' and the others' cropped to ``m`` (the product of the two)."""
        one = factors.new_ones((1, ) * (factors.dim() - 1))
        outer = reduce(torch.kron, factors[:self.exact_gates], one)
        inner = reduce(torch.kron, factors[self.exact_gates:], one)
        return outer, inner[(slice(self.odd_factor), ) * inner.dim()]

    def _matrix(self, s, corner):
        """:meth:`_kron` of ``s_k * ones + (1 - s_k) * diag(1, corner)``:
        ``U`` for ``corner=1``, ``M`` for 0."""
        s3 = s[:, None, None]
        corner = torch.tensor([[1., 0.], [0., corner]]).to(s)
        return self._kron(s3 + (1 - s3) * corner)

    def mask(self):
        """The paper's ``C x C`` mask ``U``."""
        return torch.kron(*self._matrix(self.gate_bits(), 1.))

    def conv_mask(self):
        """``M = diag(r) @ U``, the mask of the forward's weight."""
        return torch.kron(*self._matrix(self.gate_bits(), 0.))

    def conv_indicator(self):
        """``r``, 1 on the convolved channels: the diagonal of ``M``."""
        s = self.gate_bits()
        return torch.kron(*self._kron(torch.stack((torch.ones_like(s), s),
                                                  dim=1)))

    def conv_part(self, x, mask=None):
        """``conv(x, weight * mask)``; :meth:`conv_mask` by default."""
        mask = self.conv_mask() if mask is None else mask
        weight = self.weight * mask[:, :, None, None].to(self.weight)
        return F.conv2d(x, weight, padding=self.padding)

    def forward(self, x):
        if not self.deploy:
            if self.training and self.train_form == 'group':
                return self.conv_part(x, self.mask())
            passed = (1 - self.conv_indicator()).to(x.dtype)[:, None, None]
            return self.conv_part(x) + x * passed
        if self.conv is None:
            raise RuntimeError(
                'this DPConv was built with deploy=True and has no width yet'
                if not self.attached else
                'this DPConv sets the split of a PAT layer, which runs the '
                'deployed convolution; it has no forward of its own')
        if self.conv_index is None:
            n = self.conv.weight.shape[0]
            x1, x2 = torch.split(x, [n, self.channels - n], 1)
            return torch.cat((self.conv(x1), x2), 1)
        index = self.conv_index
        return x.index_copy(1, index, self.conv(x.index_select(1, index)))

    def complexity(self):
        """``nnz(U) = 2**(a + sum(s_1..s_a)) * nnz(inner)`` (the paper's
        ``2**(K + sum(s))`` for ``C = 2**K``); a constant after deploy."""
        if self.deploy:
            return self.split_stats[3].float()
        s = self.gate_bits()
        _, inner = self._matrix(s, 1.)
        return torch.exp2(self.exact_gates + s[:self.exact_gates].sum()) * \
            inner.sum()

    def budget_complexity(self, budget):
        """The paper's budget share, ``C**2 / budget**2``."""
        return self.channels**2 / budget**2

    def ordering_loss(self):
        """The sum of ``|g|`` from the first gate with ``s = 0`` after one
        with ``s = 1`` on (e.g. ``[0.3, -0.2, 0.1, -0.4]`` gives ``0.2 +
        0.1 + 0.4``); 0 for ordered gates and after deploy."""
        if self.deploy:
            return self.split_stats.new_zeros((), dtype=torch.float32)
        gate = self._live_gate()
        ones = gate.detach() >= 0
        offending = ~ones & (ones.cumsum(0) > 0)
        return (gate.abs() * (offending.cumsum(0) > 0)).sum()

    @torch.no_grad()
    def split_index(self):
        """The convolved channels and the others (int64, increasing)."""
        r = self.conv_indicator() > .5
        return r.nonzero().flatten(), (~r).nonzero().flatten()

    @torch.no_grad()
    def split(self):
        """The current split: a dict of ``channels``, ``conv_channels``,
        ``ratio``, ``num_groups`` (blocks of ``U``), ``zero_gates`` (fixed
        ones included) and ``ordered`` (gates read ``0...0 1...1``)."""
        if self.deploy:
            num_groups, zero_gates, ordered, _, n = self.split_stats.tolist()
        else:
            n = int(self.conv_indicator().sum().item())
            # Summing 1 / block size over all channels counts the blocks.
            num_groups = round((1 / self.mask().sum(1)).sum().item())
            zero_gates = int((self.gate_bits() < .5).sum().item())
            ones = self.gate >= 0
            ordered = (ones[1:] >= ones[:-1]).all().item()
        return dict(channels=self.channels, conv_channels=n,
                    ratio=n / self.channels, num_groups=num_groups,
                    zero_gates=zero_gates, ordered=bool(ordered))

    @torch.no_grad()
    def switch_to_deploy(self):
        """Convolve the convolved channels with an ``nn.Conv2d``, pass the
        others through (eval outputs unchanged). The state dict then holds
        ``conv.weight``, ``conv_index`` (gates out of order only) and
        ``split_stats`` (groups, zero gates, ordered, ``nnz(U)``, convolved
        channels). Nothing to do once :meth:`attach`-ed."""
        if self.deploy or self.attached:
            return
        index, _ = self.split_index()
        n = index.numel()
        self.conv = nn.Conv2d(n, n, self.kernel_size, padding=self.padding,
                              bias=False).to(self.weight)
        # M is all ones within channel 0's block.
        self.conv.weight.copy_(self.weight[index][:, index])
        prefix = bool((index == torch.arange(n, device=index.device)).all())
        self.register_buffer('conv_index', None if prefix else index)
        self.deploy_split()

    @torch.no_grad()
    def deploy_split(self):
        """Keep only ``split_stats`` of the gates and the full weight."""
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
    """Size a deploy-form DPConv as the checkpoint it loads."""
    if not layer.deploy or layer.attached:
        return
    k = layer.kernel_size
    n = checkpoint_width(state_dict, prefix + 'conv.weight', k,
                         layer.channels)
    if n is None:
        return
    device = layer.split_stats.device
    old = layer.conv.weight if layer.conv is not None else None
    if old is None or old.shape[0] != n:
        dtype = old.dtype if old is not None else torch.get_default_dtype()
        layer.conv = nn.Conv2d(n, n, k, padding=layer.padding,
                               bias=False).to(device, dtype)
        if k > 1:
            # A deployed backbone keeps its spatial kernels channels_last.
            layer.conv.weight.data = layer.conv.weight.data.contiguous(
                memory_format=torch.channels_last)
    fit_index_buffer(layer, 'conv_index',
                     state_dict.get(prefix + 'conv_index'), n, device)
