"""mmpartial: PartialNet backbones and DPConv layers for OpenMMLab."""
from .utils.safe_loading import allow_mmengine_checkpoints

# torch >= 2.6 unpickles checkpoints with weights_only=True; allow exactly
# the few classes mmengine saves so that resume and load_from work again.
allow_mmengine_checkpoints()

from .models import DPConv, PartialNet  # noqa: E402,F401  (registers models)
from . import engine  # noqa: E402,F401  (registers hooks, optim wrappers)

__version__ = '0.1.0'
