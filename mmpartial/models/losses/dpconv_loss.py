"""The DPConv regularisers: a complexity budget and the gate ordering."""
from itertools import chain

import torch
import torch.nn.functional as F

LOSS_FORMS = ('multiplicative', 'additive')
#: Keys of the regularisers this module adds to a loss dict; they are not
#: task losses and are never scaled.
REGULARISER_PREFIX = 'loss_dpconv_'


def is_task_loss(key):
    """Whether a loss-dict entry is a task loss (mmengine sums every key
    containing ``'loss'``), i.e. not one of the DPConv regularisers."""
    return 'loss' in key and not key.startswith(REGULARISER_PREFIX)


def scale_task_losses(losses, factor):
    """Multiply every task loss of ``losses`` (a tensor, or a list/tuple of
    tensors as mmdet's per-level losses) by ``factor``, in place; return
    the keys scaled."""
    scaled = []
    for key, value in losses.items():
        if not is_task_loss(key):
            continue
        if isinstance(value, torch.Tensor):
            losses[key] = value * factor.to(value.dtype)
        elif isinstance(value, (list, tuple)) and all(
                isinstance(v, torch.Tensor) for v in value):
            losses[key] = type(value)(v * factor.to(v.dtype) for v in value)
        else:
            continue
        scaled.append(key)
    return scaled


class DPConvLoss:
    """The complexity and ordering terms of a set of learned splits.

    ``R = sum_l complexity_l`` and ``T = sum_l budget_complexity_l``: for a
    PAT layer whose split a DPConv learns, the multiply-adds of both
    branches and the same count at the split ``1 / budget**2``; for a bare
    DPConv (``auto_div``), ``nnz(U)`` and ``C**2 / budget**2``.

    Multiplicative form (the reference's): :meth:`scale_losses` multiplies
    every task loss by :meth:`factor` ``(T / R)**alpha``, ``alpha =
    -|alpha|`` if ``R > T``, ``+|alpha|`` if ``R < theta * T``, else 0.
    Additive form: its logarithm as a separate term,
    ``loss_dpconv_complexity = complexity_weight * (relu(log(R / T)) +
    relu(log(theta * T / R)))`` (the second part only if ``theta > 0``).
    Both add ``loss_dpconv_ordering = ordering_weight * sum_l
    ordering_loss_l``.

    Args:
        layers (Sequence): Objects with ``complexity()``,
            ``budget_complexity(budget)`` and ``ordering_loss()``.
        budget (float): ``b``, > 1. Defaults to 2.
        theta (float): In [0, 1); 0 (the reference's) turns the lower bound
            off. Defaults to 0.
        alpha (float): ``|alpha|``. Defaults to 0.01.
        complexity_weight (float): Of the additive form. Defaults to 0.01.
        ordering_weight (float): Defaults to 1.
        form (str): ``'multiplicative'`` or ``'additive'``. Defaults to
            ``'multiplicative'``.
    """

    def __init__(self, layers, budget=2., theta=0., alpha=.01,
                 complexity_weight=.01, ordering_weight=1.,
                 form='multiplicative'):
        self.layers = list(layers)
        if not self.layers:
            raise ValueError('DPConvLoss needs at least one DPConv layer')
        if form not in LOSS_FORMS:
            raise ValueError(f'DPConvLoss form must be one of {LOSS_FORMS}, '
                             f'got {form!r}')
        self.budget, self.theta, self.alpha = budget, theta, alpha
        self.complexity_weight = complexity_weight
        self.ordering_weight = ordering_weight
        self.form = form

    @property
    def target(self):
        """``T``, a float (for PAT layers at their last input size)."""
        return float(sum(layer.budget_complexity(self.budget)
                         for layer in self.layers))

    def _device(self):
        tensors = (t for layer in self.layers
                   for t in chain(layer.parameters(), layer.buffers()))
        return next(tensors, torch.empty(0)).device

    def _sum(self, term):
        device = self._device()
        # Float32 also inside a mixed-precision forward: R reaches ~1e9
        # MACs, beyond float16.
        with torch.autocast(device.type, enabled=False):
            return torch.stack([getattr(layer, term)().float().to(device)
                                for layer in self.layers]).sum()

    def complexity(self):
        """``R``: the sum of the layers' costs, a float32 scalar."""
        return self._sum('complexity')

    def factor(self):
        """``(T / R)**alpha`` of the multiplicative form, a float32 scalar
        in the autograd graph of the gates."""
        with torch.autocast(self._device().type, enabled=False):
            r, t = self.complexity(), self.target
            alpha = torch.where(
                r > t, -self.alpha,
                torch.where(r < self.theta * t, self.alpha,
                            0.)).to(r.dtype)
            return torch.exp(alpha * (torch.log(r.new_tensor(t)) -
                                      torch.log(r)))

    def scale_losses(self, losses):
        """Multiply every task loss of ``losses`` (in place) by
        :meth:`factor`; return the factor."""
        factor = self.factor()
        scale_task_losses(losses, factor)
        return factor

    def ordering(self):
        """``ordering_weight * sum_l ordering_loss_l``."""
        return self.ordering_weight * self._sum('ordering_loss')

    def __call__(self):
        """The terms to add to a loss dict: ``loss_dpconv_ordering`` and,
        in the additive form, ``loss_dpconv_complexity`` (scalars in the
        autograd graph of the gates)."""
        terms = dict(loss_dpconv_ordering=self.ordering())
        if self.form == 'additive':
            with torch.autocast(self._device().type, enabled=False):
                r, t = self.complexity(), self.target
                over = F.relu(torch.log(r / t))
                if self.theta > 0:
                    over = over + F.relu(torch.log(self.theta * t / r))
            terms = dict(loss_dpconv_complexity=self.complexity_weight * over,
                         **terms)
        return terms
