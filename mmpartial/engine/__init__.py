from .amp import AutocastOptimWrapper, enable_amp
from .checkpoint_check_hook import CheckpointCheckHook
from .dpconv_hook import DPConvHook
from .layer_decay import LayerDecayOptimWrapperConstructor
from .progress_hook import ProgressHook
from .resolution_hook import TrainResolutionHook
from .runner import CheckedRunner

__all__ = [
    'AutocastOptimWrapper', 'CheckedRunner', 'CheckpointCheckHook',
    'DPConvHook', 'LayerDecayOptimWrapperConstructor', 'ProgressHook',
    'TrainResolutionHook', 'enable_amp'
]
