import math

import torch
import torch.nn as nn


def euclidean_buckets(height, width, alpha=20, beta=40, gamma=8,
                      device=None):
    """Bucket index of every (query, key) pair on a ``height x width`` grid.

    iRPE's "euclidean" method: ``r = round(||p - q||)`` in grid cells; small
    distances keep their own bucket, large ones share log-spaced buckets:
    ``f(r) = r`` for ``r <= alpha`` and
    ``min(beta, round(alpha + ln(r / alpha) / ln(gamma) * (beta - alpha)))``
    beyond. The index is ``beta + f(r)``, in ``[beta, 2 * beta]``.

    Returns:
        Tensor: ``(height * width, height * width)`` int64 indices.
    """
    ys, xs = torch.meshgrid(torch.arange(height, device=device),
                            torch.arange(width, device=device), indexing='ij')
    pos = torch.stack((ys.flatten(), xs.flatten()), dim=1).double()
    dist = torch.cdist(pos, pos).round()
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

    Args:
        num_heads (int): Number of attention heads.
        num_buckets (int): Table length, 81 for the default beta of 40.
    """

    def __init__(self, num_heads, num_buckets=81):
        super().__init__()
        self.bias_table = nn.Parameter(torch.zeros(num_heads, num_buckets))
        self.beta = (num_buckets - 1) // 2
        self._index_cache = {}

    def bucket_index(self, height, width, device):
        key = (height, width, str(device))
        index = self._index_cache.get(key)
        if index is None:
            index = euclidean_buckets(height, width, beta=self.beta,
                                      device=device)
            if len(self._index_cache) >= 32:  # bound memory on varied sizes
                self._index_cache.clear()
            self._index_cache[key] = index
        return index

    def forward(self, height, width):
        """Return the ``(heads, N, N)`` bias for an ``height x width`` map."""
        index = self.bucket_index(height, width, self.bias_table.device)
        return self.bias_table[:, index]
