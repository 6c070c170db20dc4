import math

import torch
import torch.nn as nn

from mmpartial.utils.torch_compat import is_compiling


def euclidean_buckets(height, width, alpha=20, beta=40, gamma=8,
                      device=None):
    """Bucket index of every (query, key) pair on a ``height x width`` grid.

    iRPE's "euclidean" method: ``r = round(||p - q||)`` in grid cells; small
    distances keep their own bucket, large ones share log-spaced buckets:
    ``f(r) = r`` for ``r <= alpha`` and
    ``min(beta, round(alpha + ln(r / alpha) / ln(gamma) * (beta - alpha)))``
    beyond. The index is ``beta + f(r)``, in ``[beta, 2 * beta]``.

    Written with plain tensor ops only, so ``height`` and ``width`` may also
    be the 0-dim tensors a tracer (ONNX export) hands out for a feature
    map's size: the exported graph then computes the buckets from the
    runtime size instead of baking in one shape. It computes in float32,
    which gives the integers of a float64 computation: a rounded square
    root of an integer is never a tie, and the logarithmic buckets were
    checked equal for every distance below 3000 cells.

    Returns:
        Tensor: ``(height * width, height * width)`` int64 indices.
    """
    pos = torch.arange(height * width, device=device)
    ys = torch.div(pos, width, rounding_mode='floor').float()
    xs = torch.remainder(pos, width).float()
    dy = ys[:, None] - ys[None, :]
    dx = xs[:, None] - xs[None, :]
    dist = (dy * dy + dx * dx).sqrt().round()
    far = alpha + torch.log(dist.clamp(min=alpha) / alpha) / math.log(
        gamma) * (beta - alpha)
    bucket = torch.where(dist <= alpha, dist, far.round().clamp(max=beta))
    return (bucket + beta).long()


class EuclideanRelPosBias(nn.Module):
    """Learned relative-position bias on attention logits (iRPE, bias mode).

    One table of ``2 * beta + 1`` entries per head, zero-initialised. The
    bucket indices depend only on the feature-map shape; they are computed
    once per (height, width, device) and cached, as detection inputs vary
    in size.

    In deploy form (:meth:`switch_to_deploy`) the gathered ``(heads, N, N)``
    bias itself is cached per shape, device and dtype, so inference skips
    the gather; the cache is keyed by the table's version counter too, so
    loading or editing the table invalidates it. During an ONNX export
    (and any trace of the deploy form) the buckets are computed in the
    graph from the traced size (:func:`euclidean_buckets`), so the
    exported model takes any input size.

    Args:
        num_heads (int): Number of attention heads.
        num_buckets (int): Table length, 81 for the default beta of 40.
        deploy (bool): Start in deploy form. Defaults to False.
    """
    max_cached_shapes = 32  # bound memory on varied sizes

    def __init__(self, num_heads, num_buckets=81, deploy=False):
        super().__init__()
        self.bias_table = nn.Parameter(torch.zeros(num_heads, num_buckets))
        self.beta = (num_buckets - 1) // 2
        self.deploy = deploy
        self._index_cache = {}
        self._bias_cache = {}

    def bucket_index(self, height, width, device):
        key = (height, width, str(device))
        index = self._index_cache.get(key)
        if index is None:
            index = euclidean_buckets(height, width, beta=self.beta,
                                      device=device)
            if len(self._index_cache) >= self.max_cached_shapes:
                self._index_cache.clear()
            self._index_cache[key] = index
        return index

    def forward(self, height, width):
        """Return the ``(heads, N, N)`` bias for an ``height x width`` map."""
        traced = self.deploy and torch.jit.is_tracing()
        if torch.onnx.is_in_onnx_export() or traced:
            # The size is symbolic: compute the buckets in the graph.
            index = euclidean_buckets(
                height, width, beta=self.beta, device=self.bias_table.device)
            return self.bias_table[:, index]
        if self.deploy and not is_compiling():
            return self._cached_bias(height, width)
        index = self.bucket_index(height, width, self.bias_table.device)
        return self.bias_table[:, index]

    def _cached_bias(self, height, width):
        table = self.bias_table
        key = (height, width, str(table.device), table.dtype)
        version = table._version
        cached = self._bias_cache.get(key)
        if cached is None or cached[0] != version:
            with torch.no_grad():
                bias = table[:, self.bucket_index(height, width,
                                                  table.device)]
            if len(self._bias_cache) >= self.max_cached_shapes:
                self._bias_cache.clear()
            self._bias_cache[key] = cached = (version, bias)
        return cached[1]

    def switch_to_deploy(self):
        """Cache the gathered bias per shape from now on (inference only:
        the cached bias carries no gradient to the table)."""
        self.deploy = True
