"""Heads. They build on mmpretrain, whose import pulls in its whole model
zoo (and mmdet's) for seconds; so the registry holds a builder that imports
them only when a config asks for one, and ``import mmpartial`` stays light.
"""
from mmpartial.registry import MODELS


@MODELS.register_module(name='PartialNetClsHead')
def build_partialnet_cls_head(**kwargs):
    """Build :class:`PartialNetClsHead` (see its docstring for arguments)."""
    from .partialnet_cls_head import PartialNetClsHead
    return PartialNetClsHead(**kwargs)


def __getattr__(name):
    # `from mmpartial.models.heads import PartialNetClsHead` imports lazily.
    if name == 'PartialNetClsHead':
        from .partialnet_cls_head import PartialNetClsHead
        return PartialNetClsHead
    raise AttributeError(name)


__all__ = ['PartialNetClsHead', 'build_partialnet_cls_head']
