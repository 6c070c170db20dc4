"""Datasets that check their data and report what is wrong with it.

The datasets subclass mmdet's and mmpretrain's, whose import takes
seconds; so the registry holds builders that import them only when a
config asks for one, and ``import mmpartial`` stays light. The errors and
the checks themselves need neither package.
"""
from mmpartial.registry import DATASETS
from .errors import CocoFormatError, DatasetFolderError, ImageLoadError


@DATASETS.register_module(name='CheckedCocoDataset')
def build_checked_coco_dataset(**kwargs):
    """Build :class:`CheckedCocoDataset` (see its docstring for arguments)."""
    from .checked_coco import CheckedCocoDataset
    return CheckedCocoDataset(**kwargs)


@DATASETS.register_module(name='CheckedImageNet')
def build_checked_imagenet(**kwargs):
    """Build :class:`CheckedImageNet` (see its docstring for arguments)."""
    from .checked_classification import CheckedImageNet
    return CheckedImageNet(**kwargs)


@DATASETS.register_module(name='CheckedCustomDataset')
def build_checked_custom_dataset(**kwargs):
    """Build :class:`CheckedCustomDataset` (see its docstring)."""
    from .checked_classification import CheckedCustomDataset
    return CheckedCustomDataset(**kwargs)


def __getattr__(name):
    # `from mmpartial.datasets import CheckedCocoDataset` imports lazily.
    if name == 'CheckedCocoDataset':
        from .checked_coco import CheckedCocoDataset
        return CheckedCocoDataset
    if name in ('CheckedCustomDataset', 'CheckedImageNet'):
        from . import checked_classification
        return getattr(checked_classification, name)
    raise AttributeError(name)


__all__ = [
    'CheckedCocoDataset', 'CheckedCustomDataset', 'CheckedImageNet',
    'CocoFormatError', 'DatasetFolderError', 'ImageLoadError',
    'build_checked_coco_dataset', 'build_checked_custom_dataset',
    'build_checked_imagenet'
]
