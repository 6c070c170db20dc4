"""The toy shapes classification set: the detection domain, one object each.

A classifier pretrained here and then used as the backbone of Mask R-CNN
on the toy COCO set has already seen that domain: the classes are exactly
the toy COCO categories, and every image comes from the same renderer
(:func:`~.shapes.render_single_shape`: same backgrounds, colours, shape
outlines, shading, blur and noise), with one object roughly centred and
its size varied. The layout is that of :mod:`.folders`, so the configs and
``CheckedCustomDataset`` read it like the toy ImageNet; labels follow the
sorted class names (as a folder scan gives them), not the COCO category
ids.

The output is deterministic for a given seed (and library versions); the
random stream of each image is keyed on (seed, split, category, index),
so an image does not depend on how many others are written.
"""
import os

import numpy as np

from .arguments import check_int
from .folders import (MAX_SIZE, MIN_SIZE, check_out_dir,
                      write_class_folders)
from .shapes import CLASSES, render_single_shape

# Keeps the streams of this set apart from those of the toy COCO set,
# which are keyed on (seed, split, image index): equal seeds must not give
# correlated images in the two sets.
_STREAM_TAG = 0x5CA1AB1E
_CATEGORY_INDEX = {name: i for i, name in enumerate(CLASSES)}


def shape_class_names():
    """The class names of the set, in label order (sorted)."""
    return sorted(CLASSES)


def make_toy_shapes(out_dir,
                    num_train_per_class=80,
                    num_val_per_class=20,
                    size=64,
                    seed=0,
                    *,
                    verbose=True):
    """Write the toy shapes classification set under ``out_dir``.

    Existing files are never deleted; files with the names written here are
    overwritten.

    Args:
        out_dir (str | PathLike): The output folder (created).
        num_train_per_class (int): Training images per class, >= 1.
        num_val_per_class (int): Validation images per class, >= 1.
        size (int): Image side in pixels, ``MIN_SIZE``..``MAX_SIZE``.
        seed (int): Random seed, >= 0.
        verbose (bool): Print progress.

    Returns:
        dict: as :func:`make_toy_imagenet`: ``out_dir``, ``classes`` (label
        order), ``num_classes``, ``size``, ``seed``, ``seconds``,
        ``classes_file`` and, per split: ``dir``, ``ann_file``,
        ``per_class``, ``count`` and ``files``.

    Raises:
        ValueError: an argument is out of range (the message names it).
        OutputDirError: ``out_dir`` or a file in it cannot be written.
    """
    check_int('num_train_per_class', num_train_per_class, 1)
    check_int('num_val_per_class', num_val_per_class, 1)
    check_int('size', size, MIN_SIZE, MAX_SIZE)
    check_int('seed', seed, 0)
    out_dir = os.fspath(out_dir)
    check_out_dir(out_dir)

    names = shape_class_names()

    def render(split_index, name, index):
        rng = np.random.default_rng(
            [_STREAM_TAG, seed, split_index, _CATEGORY_INDEX[name], index])
        return render_single_shape(rng, name, size)[0]

    summary = write_class_folders(
        out_dir, names,
        {'train': num_train_per_class, 'val': num_val_per_class}, render,
        header=(f'Writing toy shapes to {out_dir}: {len(names)} classes '
                f'({", ".join(names)}), {num_train_per_class} train + '
                f'{num_val_per_class} val images per class, {size}x{size} '
                f'px, seed {seed}'),
        log=print if verbose else (lambda *a, **k: None))
    summary.update(size=size, seed=seed)
    return summary
