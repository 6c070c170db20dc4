import math

import torch
import torch.nn as nn

from mmpartial.utils.torch_compat import is_compiling

#: iRPE's "euclidean" method: distances up to ``ALPHA`` cells keep their own
#: bucket, farther ones share buckets spaced by powers of ``GAMMA``.
ALPHA, GAMMA = 20, 8


def grid_distances(height, width, device=None):
    """Rounded euclidean distance ``round(||p - q||)``, in grid cells, of
    every (query, key) pair on a ``height x width`` grid, as float32
    integers.

    Written with plain tensor ops only, so ``height`` and ``width`` may also
    be the 0-dim tensors a tracer (ONNX export) hands out for a feature
    map's size: the exported graph then computes the distances from the
    runtime size instead of baking in one shape. A rounded square root of
    an integer is never a tie, so float32 gives the integers of a float64
    computation.

    Returns:
        Tensor: ``(height * width, height * width)`` float32.
    """
    pos = torch.arange(height * width, device=device)
    ys = torch.div(pos, width, rounding_mode='trunc').float()  # pos >= 0
    xs = torch.remainder(pos, width).float()
    dy = ys[:, None] - ys[None, :]
    dx = xs[:, None] - xs[None, :]
    return (dy * dy + dx * dx).sqrt().round()


def distance_buckets(dist, alpha=ALPHA, beta=40, gamma=GAMMA):
    """iRPE's "euclidean" bucket of rounded distances ``dist`` (float).

    Small distances keep their own bucket, large ones share log-spaced
    buckets: ``f(r) = r`` for ``r <= alpha`` and
    ``min(beta, round(alpha + ln(r / alpha) / ln(gamma) * (beta - alpha)))``
    beyond. The index is ``beta + f(r)``, in ``[beta, 2 * beta]``. In
    float32 it gives the integers of a float64 computation (checked for
    every distance below 3000 cells).

    Returns:
        Tensor: int64 indices, ``dist``'s shape.
    """
    far = alpha + torch.log(dist.clamp(min=alpha) / alpha) / math.log(
        gamma) * (beta - alpha)
    bucket = torch.where(dist <= alpha, dist, far.round().clamp(max=beta))
    return (bucket + beta).long()


def euclidean_buckets(height, width, alpha=ALPHA, beta=40, gamma=GAMMA,
                      device=None):
    """Bucket index of every (query, key) pair on a ``height x width`` grid:
    :func:`distance_buckets` of :func:`grid_distances` (traceable for a
    symbolic size, like both).

    Returns:
        Tensor: ``(height * width, height * width)`` int64 indices.
    """
    return distance_buckets(grid_distances(height, width, device), alpha,
                            beta, gamma)


class EuclideanRelPosBias(nn.Module):
    """Learned relative-position bias on attention logits (iRPE, bias mode).

    One table of ``2 * beta + 1`` entries per head, zero-initialised. The
    bucket indices depend only on the feature-map shape; they are computed
    once per (height, width, device) and cached, as detection inputs vary
    in size.

    In deploy form (:meth:`switch_to_deploy`) the gathered ``(heads, N, N)``
    bias itself is cached per shape, device and dtype, so inference skips
    the gather; the cache is keyed by the table's version counter too, so
    loading or editing the table invalidates it.

    An exported graph (ONNX; any trace of the deploy form) computes the
    bias from the traced size, so that it takes any input size. The train
    form computes the buckets there (:func:`euclidean_buckets`). The
    deploy form folds the bucket function into a constant instead, the
    bias of every rounded distance up to ``alpha * gamma`` cells, beyond
    which the bucket no longer changes (:meth:`distance_bias`): the graph
    only computes the distances, clamps them and gathers, with fewer than
    two thirds of the operators (which counts in a runtime at batch 1).

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
        # From alpha * gamma cells on, every distance is in the last bucket.
        self.max_distance = ALPHA * GAMMA
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
        if self.deploy and torch.jit.is_tracing():
            # The size is symbolic: distances in the graph, buckets folded.
            dist = grid_distances(height, width, self.bias_table.device)
            index = dist.clamp(max=self.max_distance).long()
            return self.distance_bias()[:, index]
        if torch.onnx.is_in_onnx_export():
            index = euclidean_buckets(
                height, width, beta=self.beta, device=self.bias_table.device)
            return self.bias_table[:, index]
        if self.deploy and not is_compiling():
            return self._cached_bias(height, width)
        index = self.bucket_index(height, width, self.bias_table.device)
        return self.bias_table[:, index]

    def distance_bias(self):
        """The ``(heads, max_distance + 1)`` bias of every rounded distance
        from 0 to :attr:`max_distance`, which stands for all farther ones:
        from ``alpha * gamma`` cells on the log-spaced bucket is ``2 *
        beta``, the last. Computed from the table on every call, so that
        an exporter folds it into one constant of the graph."""
        dist = torch.arange(self.max_distance + 1, dtype=torch.float32,
                            device=self.bias_table.device)
        return self.bias_table[:, distance_buckets(dist, beta=self.beta)]

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
