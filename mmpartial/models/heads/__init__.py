from .partialnet_cls_head import PartialNetClsHead

__all__ = ['PartialNetClsHead']
