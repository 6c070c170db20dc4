from .blocks import PartialAttnBlock, PartialBlock, PartialMLP
from .conv_bn import ConvBN
from .dpconv import DPConv
from .drop_path import DropPath
from .irpe import EuclideanRelPosBias, euclidean_buckets
from .pat_channel import PATChannel, StylePoolGate
from .pat_self_attn import PATSelfAttention, RelPosSelfAttention
from .pat_spatial import PATSpatial

__all__ = [
    'ConvBN', 'DPConv', 'DropPath', 'EuclideanRelPosBias', 'PATChannel',
    'PATSelfAttention', 'PATSpatial', 'PartialAttnBlock', 'PartialBlock',
    'PartialMLP', 'RelPosSelfAttention', 'StylePoolGate', 'euclidean_buckets'
]
