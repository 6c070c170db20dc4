from .backbones import PartialNet

__all__ = ['PartialNet']
