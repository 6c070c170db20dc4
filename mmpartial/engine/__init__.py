from .amp import AutocastOptimWrapper, enable_amp
from .checkpoint_check_hook import CheckpointCheckHook
from .dpconv_hook import DPConvHook
from .progress_hook import ProgressHook
from .resolution_hook import TrainResolutionHook
from .runner import CheckedRunner

__all__ = [
    'AutocastOptimWrapper', 'CheckedRunner', 'CheckpointCheckHook',
    'DPConvHook', 'ProgressHook', 'TrainResolutionHook', 'enable_amp'
]
