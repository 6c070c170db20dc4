"""The DPConv regularisers: a complexity budget and the gate ordering.

Two forms of the complexity term (``R`` the cost of the learned splits,
``T`` the budget; see :class:`DPConvLoss`):

- ``'multiplicative'`` (default, the reference's): every task loss is
  multiplied by ``(T / R)**alpha``, ``alpha = -|alpha|`` when ``R > T``,
  ``+|alpha|`` when ``R < theta * T`` and 0 in between;
- ``'additive'``: a separate loss ``complexity_weight * (relu(log(R / T))
  + relu(log(theta * T / R)))``.
"""
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
    """Multiply every task loss of ``losses`` by ``factor``, in place.

    A value may be a tensor or a list/tuple of tensors (mmdet's per-level
    losses); other entries (accuracies, the regularisers) are left alone.

    Returns:
        list[str]: The keys that were scaled.
    """
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
    PAT layer whose split a DPConv learns, its multiply-adds (both branches,
    :meth:`PartialSplitLayer.complexity`) and the same count at the split
    ``1 / budget**2`` (PartialNet's 1/4 for the default budget 2), so the
    budget is a number of MACs; for a bare DPConv (the ``auto_div``
    network), the paper's ``nnz(U)`` and ``C**2 / budget**2``. Both are
    differentiable through the straight-through estimator.

    Multiplicative form (default; the reference training)::

        factor = (T / R)**alpha,   alpha = -|alpha|  if R > T
                                           +|alpha|  if R < theta * T
                                           0         otherwise

    :meth:`factor` is what every task loss is multiplied by
    (:meth:`scale_losses`); :meth:`__call__` gives only the ordering term.
    Inside ``[theta * T, T]`` the factor is 1 with a zero gradient; above
    ``T`` its gradient pushes ``R`` down by ``|alpha| * L / R`` per unit of
    ``R`` (``L`` the task loss), below ``theta * T`` up.

    Additive form::

        loss_dpconv_complexity = complexity_weight * (
            relu(log(R / T)) + relu(log(theta * T / R)))

    (the second part only when ``theta > 0``): the logarithm of the factor
    as a separate term, with the same zones and directions, a push of
    ``complexity_weight / R`` that does not scale with the task loss, and
    task losses that are logged unscaled.

    Ordering (both forms)::

        loss_dpconv_ordering = ordering_weight * sum_l ordering_loss_l

    Args:
        layers (Sequence): The learned splits: objects with
            ``complexity()``, ``budget_complexity(budget)`` and
            ``ordering_loss()`` (PAT layers with a DPConv, or DPConvs).
        budget (float): ``b``, > 1. Defaults to 2.
        theta (float): Lower bound ``theta * T``, in [0, 1); 0 turns it off.
            Defaults to 0 (as every reference config).
        alpha (float): ``|alpha|`` of the multiplicative form. Defaults to
            0.01.
        complexity_weight (float): Weight of the additive form. Defaults to
            0.01.
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
        self.budget = budget
        self.theta = theta
        self.alpha = alpha
        self.complexity_weight = complexity_weight
        self.ordering_weight = ordering_weight
        self.form = form

    @property
    def target(self):
        """``T``, a float (for PAT layers at their last input size)."""
        return float(sum(layer.budget_complexity(self.budget)
                         for layer in self.layers))

    def _device(self):
        for layer in self.layers:
            for tensor in list(layer.parameters()) + list(layer.buffers()):
                return tensor.device
        return torch.device('cpu')

    def complexity(self):
        """``R``: the sum of the layers' costs, a float32 scalar."""
        device = self._device()
        with torch.autocast(device.type, enabled=False):
            return torch.stack([
                layer.complexity().float().to(device)
                for layer in self.layers
            ]).sum()

    def factor(self):
        """``(T / R)**alpha`` of the multiplicative form, a float32 scalar
        in the autograd graph of the gates."""
        device = self._device()
        # R reaches ~1e9 MACs, beyond float16: float32 also inside a
        # mixed-precision forward.
        with torch.autocast(device.type, enabled=False):
            r = self.complexity()
            t = self.target
            alpha = torch.where(
                r > t, -self.alpha,
                torch.where(r < self.theta * t, self.alpha,
                            0.)).to(r.dtype)
            return torch.exp(alpha * (torch.log(r.new_tensor(t)) -
                                      torch.log(r)))

    def scale_losses(self, losses):
        """Multiply every task loss of ``losses`` (in place) by
        :meth:`factor`; returns the factor. See :func:`scale_task_losses`.
        """
        factor = self.factor()
        scale_task_losses(losses, factor)
        return factor

    def ordering(self):
        """``ordering_weight * sum_l ordering_loss_l``."""
        device = self._device()
        with torch.autocast(device.type, enabled=False):
            total = torch.stack([
                layer.ordering_loss().float().to(device)
                for layer in self.layers
            ]).sum()
        return self.ordering_weight * total

    def __call__(self):
        """The regulariser terms to add to a loss dict.

        Returns:
            dict[str, Tensor]: ``loss_dpconv_ordering``, and in the additive
            form ``loss_dpconv_complexity``; scalars in the autograd graph
            of the gates.
        """
        terms = dict(loss_dpconv_ordering=self.ordering())
        if self.form == 'additive':
            device = self._device()
            with torch.autocast(device.type, enabled=False):
                r = self.complexity()
                t = self.target
                over = F.relu(torch.log(r / t))
                if self.theta > 0:
                    over = over + F.relu(torch.log(self.theta * t / r))
            terms = dict(loss_dpconv_complexity=self.complexity_weight * over,
                         **terms)
        return terms
