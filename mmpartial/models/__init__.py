from .backbones import PartialNet
from .layers import DPConv

__all__ = ['DPConv', 'PartialNet']

try:  # the classification head builds on mmpretrain's ClsHead
    from .heads import PartialNetClsHead  # noqa: F401
    __all__.append('PartialNetClsHead')
except ImportError:  # backbone-only use (e.g. a machine without mmcv)
    pass
