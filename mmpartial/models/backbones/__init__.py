from .partialnet import PartialNet
from .pat_resnet import PATResNet

__all__ = ['PATResNet', 'PartialNet']
