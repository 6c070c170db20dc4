"""The package's registry, a child of MMEngine's root ``MODELS``.

Because it is a child of the root registry with scope ``mmpartial``, configs
of any OpenMMLab codebase (mmdet, mmpretrain, ...) reach its classes as
``type='mmpartial.PartialNet'`` once ``mmpartial`` has been imported (for
instance with ``custom_imports=dict(imports=['mmpartial'])``).
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmpartial',
                  locations=['mmpartial.models'])
