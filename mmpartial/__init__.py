"""mmpartial: PartialNet backbones and DPConv layers for OpenMMLab."""
from .utils.safe_loading import allow_mmengine_checkpoints
from .version import __version__

# torch >= 2.6 unpickles checkpoints with weights_only=True; allow exactly
# the few classes mmengine saves so that resume and load_from work again.
allow_mmengine_checkpoints()

from . import datasets, engine  # noqa: E402,F401  (registers components)
from .models import DPConv, PartialNet  # noqa: E402,F401  (registers models)

__all__ = ['DPConv', 'PartialNet', '__version__']
