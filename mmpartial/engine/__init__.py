from .amp import AutocastOptimWrapper, enable_amp
from .checkpoint_check_hook import CheckpointCheckHook
from .dpconv_hook import DPConvHook
from .resolution_hook import TrainResolutionHook
from .runner import CheckedRunner

__all__ = [
    'AutocastOptimWrapper', 'CheckedRunner', 'CheckpointCheckHook',
    'DPConvHook', 'TrainResolutionHook', 'enable_amp'
]
