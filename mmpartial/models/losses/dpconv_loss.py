"""The DPConv regularisers: a complexity budget and the gate ordering."""
import torch
import torch.nn.functional as F


class DPConvLoss:
    """The complexity and ordering terms of a set of DPConv layers.

    With ``R = sum_l nnz(U_l)`` (each layer's :meth:`DPConv.complexity`,
    differentiable through the straight-through estimator) and the budget
    ``T = sum_l C_l**2 / budget**2``::

        loss_dpconv_complexity = complexity_weight * (
            relu(log(R / T))                     # R above T: pushes R down
            + relu(log(theta * T / R)))          # R below theta*T: pushes up
        loss_dpconv_ordering = ordering_weight * sum_l ordering_loss_l

    (the second complexity part only when ``theta > 0``). Inside
    ``[theta * T, T]`` the complexity term is 0 with a zero gradient, also
    at the edges (``relu'(0) = 0``): PartialNet's initial split 1/4 gives
    ``R = T`` for the default budget 2 and is left alone.

    This is the additive form of the reference's multiplicative one. The
    reference trains on ``L * (T / R)**alpha``, ``alpha = -w`` above the
    budget, ``+w`` below ``theta * T``, else 0 (``w = 0.01``). Its logarithm,
    ``log L + alpha * log(T / R)``, has the same regulariser gradient as the
    terms above, ``-/+ w / R`` per unit of ``R``, with the same sign and
    zones; the ``theta * T`` in the lower term only makes the loss
    continuous at the zone edge. Differences: the multiplicative form scales
    that push by the current task loss ``L`` (its gradient is about
    ``grad L + alpha * L * grad log(T / R)``), so to match its strength at a
    typical task loss ``L``, use ``complexity_weight = 0.01 * L``. The
    additive form was chosen because it composes with any model's loss dict
    (mmengine sums every ``loss*`` key) without rescaling, and so without
    changing, the task losses that are logged.

    Args:
        layers (Sequence[DPConv]): The layers to regularise.
        budget (float): ``b`` of ``T = sum C**2 / b**2``, > 1. Defaults to 2.
        theta (float): Lower bound ``theta * T``, in [0, 1); 0 turns it off.
            Defaults to 0.5.
        complexity_weight (float): Defaults to 0.01.
        ordering_weight (float): Defaults to 1.
    """

    def __init__(self, layers, budget=2., theta=.5, complexity_weight=.01,
                 ordering_weight=1.):
        self.layers = list(layers)
        if not self.layers:
            raise ValueError('DPConvLoss needs at least one DPConv layer')
        self.budget = budget
        self.theta = theta
        self.complexity_weight = complexity_weight
        self.ordering_weight = ordering_weight
        self.target = sum(layer.channels**2 for layer in self.layers) / \
            budget**2

    def complexity(self):
        """``R``: the sum of the layers' ``nnz(U)``, a float32 scalar."""
        return torch.stack(
            [layer.complexity().float() for layer in self.layers]).sum()

    def __call__(self):
        """Return ``loss_dpconv_complexity`` and ``loss_dpconv_ordering``.

        Returns:
            dict[str, Tensor]: Two scalars, both in the autograd graph of the
            gates.
        """
        device = next(self.layers[0].parameters()).device
        # R reaches sum C**2 (~1e6), beyond float16: compute in float32 also
        # inside a mixed-precision forward.
        with torch.autocast(device.type, enabled=False):
            r = self.complexity()
            over = F.relu(torch.log(r / self.target))
            if self.theta > 0:
                over = over + F.relu(torch.log(self.theta * self.target / r))
            ordering = torch.stack([
                layer.ordering_loss().float() for layer in self.layers
            ]).sum()
        return dict(
            loss_dpconv_complexity=self.complexity_weight * over,
            loss_dpconv_ordering=self.ordering_weight * ordering)
