"""Embedded toy data sets, generated in seconds, for demos and tests.

* :func:`make_toy_coco` (:mod:`.coco`): COCO-format instance segmentation
  of shapes, drawn by the renderer of :mod:`.shapes`.
* :func:`make_toy_shapes` (:mod:`.shape_classification`): classification
  of the same shapes, same renderer, one object per image, to pretrain a
  backbone on the detection domain.
* :func:`make_toy_imagenet` (:mod:`.imagenet`): classification of
  procedural textures (:mod:`.patterns`).
* :func:`make_toy_ade` (:mod:`.ade`): semantic segmentation of the toy
  COCO scenes, in ADE20K's layout with index-PNG label maps.

Both classification sets use ImageNet's folder layout (:mod:`.folders`).
The ``tools/make_toy_*.py`` scripts are command lines for these functions.
These modules use numpy, Pillow and OpenCV only, no torch.
"""
from .ade import (ADE_CLASSES, ADE_PALETTE, ADE_SPLITS, DEFAULT_ADE_SIZE,
                  make_toy_ade)
from .arguments import check_int, int_arg
from .coco import (CATEGORIES, DEFAULT_SIZE, MIN_VISIBLE_AREA, SIZE_JITTER,
                   SIZE_RANGE, SPLITS, empty_image_indices, image_size,
                   make_toy_coco, output_error_message, sample_rng)
from .folders import MAX_SIZE, MIN_SIZE, OutputDirError
from .imagenet import CLASSES_HINT, MAX_CLASSES, class_names, make_toy_imagenet
from .polygons import mask_to_polygons, open_3x3
from .shape_classification import make_toy_shapes, shape_class_names
from .shapes import CLASSES, render_sample, render_single_shape

__all__ = [
    'ADE_CLASSES', 'ADE_PALETTE', 'ADE_SPLITS', 'CATEGORIES', 'CLASSES',
    'CLASSES_HINT', 'DEFAULT_ADE_SIZE', 'DEFAULT_SIZE', 'MAX_CLASSES',
    'MAX_SIZE', 'MIN_SIZE', 'MIN_VISIBLE_AREA', 'OutputDirError',
    'SIZE_JITTER', 'SIZE_RANGE', 'SPLITS', 'check_int', 'class_names',
    'empty_image_indices', 'image_size', 'int_arg', 'make_toy_ade',
    'make_toy_coco', 'make_toy_imagenet', 'make_toy_shapes',
    'mask_to_polygons', 'open_3x3', 'output_error_message', 'render_sample',
    'render_single_shape', 'sample_rng', 'shape_class_names'
]
