"""mmpartial: PartialNet backbones and DPConv layers for OpenMMLab."""
from .models import *  # noqa: F401,F403  (registers every model class)

__version__ = '0.1.0'
