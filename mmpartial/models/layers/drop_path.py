import torch.nn as nn


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample.

    Args:
        drop_prob (float): Probability of dropping a sample's branch.
    """

    def __init__(self, drop_prob=0.):
        super().__init__()
        if not 0. <= drop_prob < 1.:
            raise ValueError(f'drop_prob must be in [0, 1), got {drop_prob}')
        self.drop_prob = drop_prob

    def forward(self, x):
        if self.drop_prob == 0. or not self.training:
            return x
        keep = 1. - self.drop_prob
        shape = (x.shape[0], ) + (1, ) * (x.ndim - 1)
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self):
        return f'drop_prob={self.drop_prob}'
