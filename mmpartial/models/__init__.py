from . import heads  # noqa: F401  (registers the head builders)
from . import roi_heads  # noqa: F401  (registers the RoI head builders)
from .backbones import PartialNet, PATResNet
from .layers import DPConv


def __getattr__(name):
    if name == 'PartialNetClsHead':  # imports mmpretrain on first use
        return heads.PartialNetClsHead
    raise AttributeError(name)


__all__ = ['DPConv', 'PATResNet', 'PartialNet', 'PartialNetClsHead']
