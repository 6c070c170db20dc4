"""The package's registries, children of MMEngine's root registries.

Being children of the root registries with scope ``mmpartial``, they are
reached from configs of any OpenMMLab codebase (mmdet, mmpretrain, ...) as
``type='mmpartial.PartialNet'`` once ``mmpartial`` has been imported (for
instance with ``custom_imports=dict(imports=['mmpartial'])``).
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmpartial',
                  locations=['mmpartial.models'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS,
                          scope='mmpartial', locations=['mmpartial.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope='mmpartial',
    locations=['mmpartial.engine'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmpartial',
                 locations=['mmpartial.engine'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='mmpartial',
                    locations=['mmpartial.datasets'])
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, scope='mmpartial',
                   locations=['mmpartial.engine'])
