from .partialnet import PartialNet

__all__ = ['PartialNet']
