"""The toy ADE20K set: semantic segmentation of shapes, in ADE20K's layout.

The segmentation configs train and evaluate on it on a CPU in minutes,
without downloading ADE20K. Layout written (ADEChallengeData2016's)::

    OUT_DIR/images/training/ADE_train_00000001.jpg ...
    OUT_DIR/images/validation/ADE_val_00000001.jpg ...
    OUT_DIR/annotations/training/ADE_train_00000001.png ...
    OUT_DIR/annotations/validation/ADE_val_00000001.png ...

The annotations are index PNGs (8-bit greyscale, one value per pixel) with
ADE20K's convention: 0 is "unlabeled" (ignored with ``reduce_zero_label``),
1 is the background and 2-5 are the four shapes of :data:`~.shapes.CLASSES`;
so mmseg's ADE20K pipeline (``reduce_zero_label=True``) reads it with the
classes :data:`ADE_CLASSES`. The only unlabeled pixels are the visible
remnants of objects too small to annotate (the toy COCO set leaves them
out too).

Images are drawn as those of the toy COCO set (:func:`~.coco.make_toy_coco`):
the same renderer, the same random stream per image, so with the same seed
and size the two sets show the same scenes. The default size is half the
toy COCO one: objects keep their sizes in pixels (24-77 px here), so they
cover more of each image, and a CPU trains on more images per minute.
"""
import os

import numpy as np
from PIL import Image

from .coco import (MIN_VISIBLE_AREA, check_coco_args, empty_image_indices,
                   image_size, sample_rng)
from .folders import OutputDirError, check_out_dir
from .shapes import CLASSES, render_sample

# ADE20K's split folders, and its file-name prefixes.
ADE_SPLITS = ('training', 'validation')
_PREFIX = {'training': 'ADE_train', 'validation': 'ADE_val'}
# Label-map values: 0 unlabeled, 1 background, 2.. the shapes.
UNLABELED = 0
ADE_CLASSES = ('background', ) + CLASSES
ADE_PALETTE = ((120, 120, 120), (220, 20, 60), (0, 128, 255), (0, 200, 0),
               (255, 160, 0))
DEFAULT_ADE_SIZE = (160, 128)  # (width, height) before the per-image jitter
JPEG_QUALITY = 90


def label_map(objects, height, width):
    """The index map of one image: 1 everywhere, ``category + 1`` on the
    visible part of each object, 0 on remnants too small to annotate."""
    labels = np.ones((height, width), dtype=np.uint8)
    for category_id, visible in objects:
        area = int(visible.sum())
        if area == 0:
            continue
        labels[visible] = category_id + 1 if area >= MIN_VISIBLE_AREA \
            else UNLABELED
    return labels


def _save(image, path, **kwargs):
    try:
        image.save(path, **kwargs)
    except OSError as e:
        raise OutputDirError(f'cannot write {path!r}: '
                             f'{e.strerror or e.__class__.__name__}') from None


def _makedirs(path):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise OutputDirError(f'cannot create folder {path!r}: '
                             f'{e.strerror or e.__class__.__name__}') from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputDirError(f'folder {path!r} is not writable')


def _make_split(out_dir, split_index, num_images, seed, base_size, progress):
    split = ADE_SPLITS[split_index]
    img_dir = os.path.join(out_dir, 'images', split)
    ann_dir = os.path.join(out_dir, 'annotations', split)
    _makedirs(img_dir)
    _makedirs(ann_dir)
    empty = empty_image_indices(seed, split_index, num_images)
    pixels = np.zeros(len(ADE_CLASSES) + 1, dtype=np.int64)
    every = max(1, num_images // 4)
    for index in range(num_images):
        rng = sample_rng(seed, split_index, index)
        width, height = image_size(rng, base_size)
        rgb, objects = render_sample(rng, width, height,
                                     with_objects=index not in empty)
        labels = label_map(objects, height, width)
        pixels += np.bincount(labels.ravel(), minlength=len(pixels))
        name = f'{_PREFIX[split]}_{index + 1:08d}'
        _save(Image.fromarray(rgb), os.path.join(img_dir, name + '.jpg'),
              quality=JPEG_QUALITY)
        _save(Image.fromarray(labels, mode='L'),
              os.path.join(ann_dir, name + '.png'))
        if progress and ((index + 1) % every == 0 or index + 1 == num_images):
            progress(f'{split}: {index + 1}/{num_images} images')
    return {
        'images': num_images, 'img_dir': img_dir, 'ann_dir': ann_dir,
        # Pixels per label-map value: 'unlabeled', then ADE_CLASSES.
        'pixels': dict(zip(('unlabeled', ) + ADE_CLASSES,
                           (int(n) for n in pixels))),
    }


def make_toy_ade(out_dir, num_train=256, num_val=32, seed=0,
                 size=DEFAULT_ADE_SIZE, progress=None):
    """Write the toy segmentation set under ``out_dir``; return a summary.

    Args:
        out_dir (str): The output folder (created). Only the files named
            above are written (overwritten when present); nothing else in
            it is touched.
        num_train (int): Training images (>= 1). Defaults to 256.
        num_val (int): Validation images (>= 1). Defaults to 32.
        seed (int): Random seed (>= 0). Defaults to 0.
        size (tuple[int, int]): Base (width, height), jittered per image
            by 0.8-1.1 as in the toy COCO set. Defaults to (160, 128).
        progress (callable, optional): Takes one message string.

    Returns:
        dict: ``out_dir``, ``seed``, ``classes`` (:data:`ADE_CLASSES`, the
        classes of label-map values 1, 2, ...) and per split (``training``,
        ``validation``): ``images``, ``img_dir``, ``ann_dir`` and
        ``pixels`` (pixel count per label-map value).

    Raises:
        ValueError: A bad argument (named).
        OSError: ``out_dir`` (or a file in it) cannot be written
            (:class:`~.folders.OutputDirError` names the path).
    """
    check_coco_args(num_train, num_val, seed, size)
    out_dir = os.path.abspath(os.fspath(out_dir))
    check_out_dir(out_dir)
    summary = {'out_dir': out_dir, 'seed': int(seed),
               'classes': ADE_CLASSES, 'splits': {}}
    for split_index, num in enumerate((int(num_train), int(num_val))):
        summary['splits'][ADE_SPLITS[split_index]] = _make_split(
            out_dir, split_index, num, int(seed), tuple(map(int, size)),
            progress)
    return summary
