from .amp import AutocastOptimWrapper
from .resolution_hook import TrainResolutionHook

__all__ = ['AutocastOptimWrapper', 'TrainResolutionHook']
