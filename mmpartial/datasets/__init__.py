"""Datasets that check their data and report what is wrong with it.

The datasets subclass mmdet's, mmpretrain's and mmseg's, whose import takes
seconds; so the registry holds builders that import them only when a
config asks for one, and ``import mmpartial`` stays light. The errors and
the checks of the COCO and classification datasets need neither package;
those of the segmentation datasets (``PaletteError``, ``SegLabelError``)
come with :mod:`.checked_segmentation`, which imports mmseg.
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


@DATASETS.register_module(name='CheckedSegDataset')
def build_checked_seg_dataset(**kwargs):
    """Build :class:`CheckedSegDataset` (see its docstring for arguments)."""
    from .checked_segmentation import CheckedSegDataset
    return CheckedSegDataset(**kwargs)


@DATASETS.register_module(name='CheckedADE20KDataset')
def build_checked_ade20k_dataset(**kwargs):
    """Build :class:`CheckedADE20KDataset` (see its docstring)."""
    from .checked_segmentation import CheckedADE20KDataset
    return CheckedADE20KDataset(**kwargs)


def __getattr__(name):
    # `from mmpartial.datasets import CheckedCocoDataset` imports lazily.
    if name == 'CheckedCocoDataset':
        from .checked_coco import CheckedCocoDataset
        return CheckedCocoDataset
    if name in ('CheckedCustomDataset', 'CheckedImageNet'):
        from . import checked_classification
        return getattr(checked_classification, name)
    if name in ('CheckedADE20KDataset', 'CheckedSegDataset', 'PaletteError',
                'SegLabelError'):
        from . import checked_segmentation
        return getattr(checked_segmentation, name)
    raise AttributeError(name)


__all__ = [
    'CheckedADE20KDataset', 'CheckedCocoDataset', 'CheckedCustomDataset',
    'CheckedImageNet', 'CheckedSegDataset', 'CocoFormatError',
    'DatasetFolderError', 'ImageLoadError', 'PaletteError', 'SegLabelError',
    'build_checked_ade20k_dataset', 'build_checked_coco_dataset',
    'build_checked_custom_dataset', 'build_checked_imagenet',
    'build_checked_seg_dataset'
]
