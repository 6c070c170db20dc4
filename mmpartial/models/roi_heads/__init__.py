"""Mask R-CNN RoI parts for training on a CPU.

In the toy Mask R-CNN, a CPU spent a fifth of each training step in mmcv's
single-threaded RoIAlign and about a sixth in the mask head, which mmdet
runs on every positive RoI (up to 32 per image, several per shape). These
builders give mmdet's own classes with that work cut:

- ``TorchRoIExtractor``: mmdet's ``SingleRoIExtractor`` whose RoIAlign is
  :class:`~mmpartial.models.layers.roi_align.RoIAlign` (the same numbers,
  batched matrix products on all threads);
- ``CappedMaskRoIHead``: mmdet's ``StandardRoIHead`` that trains the mask
  head on a random subset of each image's positive RoIs.

They import mmdet when a config asks for one, so ``import mmpartial``
stays light.
"""
from mmpartial.registry import MODELS


@MODELS.register_module(name='TorchRoIExtractor')
def build_torch_roi_extractor(roi_layer, **kwargs):
    """mmdet's ``SingleRoIExtractor`` (same arguments) whose ``roi_layer``,
    ``type='RoIAlign'`` in average mode, is computed in PyTorch."""
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

    from ..layers.roi_align import RoIAlign
    layer = dict(roi_layer)
    layer_type = layer.pop('type', 'RoIAlign')
    if layer_type != 'RoIAlign':
        raise ValueError(
            "TorchRoIExtractor computes roi_layer type 'RoIAlign' only, got "
            f"{layer_type!r}; use mmdet's SingleRoIExtractor for mmcv's "
            'other RoI ops')
    return SingleRoIExtractor(roi_layer=dict(type=RoIAlign, **layer),
                              **kwargs)


@MODELS.register_module(name='CappedMaskRoIHead')
def build_capped_mask_roi_head(**kwargs):
    """Build :class:`CappedMaskRoIHead` (see its docstring)."""
    from .capped_mask_roi_head import CappedMaskRoIHead
    return CappedMaskRoIHead(**kwargs)


def __getattr__(name):
    # `from mmpartial.models.roi_heads import CappedMaskRoIHead` imports
    # mmdet on first use only.
    if name == 'CappedMaskRoIHead':
        from .capped_mask_roi_head import CappedMaskRoIHead
        return CappedMaskRoIHead
    raise AttributeError(name)


__all__ = ['CappedMaskRoIHead', 'build_capped_mask_roi_head',
           'build_torch_roi_extractor']
