from .amp import AutocastOptimWrapper
from .dpconv_hook import DPConvHook
from .resolution_hook import TrainResolutionHook

__all__ = ['AutocastOptimWrapper', 'DPConvHook', 'TrainResolutionHook']
