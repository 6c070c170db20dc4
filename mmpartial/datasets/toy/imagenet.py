"""The toy ImageNet: a small texture classification set in folder layout.

It is meant as an embedded default: it is generated in seconds, a small
classifier trained on it on a CPU reaches accuracy far above chance in a
few minutes, and tests can use it without downloading anything. The
classes are the texture families of :mod:`.patterns`; the layout is that of
:mod:`.folders`. A matching mmpretrain dataset config (``classes`` is a
path read as given, not joined with ``data_root``)::

    train_dataloader = dict(
        dataset=dict(
            type='CustomDataset',
            data_root='OUT_DIR',
            ann_file='meta/train.txt',
            data_prefix='train',
            classes='OUT_DIR/meta/classes.txt',
            pipeline=...))

The output is deterministic for a given seed (and library versions).
Images of one class do not depend on which other classes are generated:
the random stream of each image is keyed on (seed, split, class family,
index).
"""
import os

import numpy as np

from .arguments import check_int
from .folders import (MAX_SIZE, MIN_SIZE, check_out_dir,
                      write_class_folders)
from .patterns import FAMILY_INDEX, GENERATORS, render_pattern

MAX_CLASSES = len(GENERATORS)
# Appended to errors about the number of classes: where the maximum is from.
CLASSES_HINT = (f' (the maximum is {MAX_CLASSES}, the number of pattern '
                f'families: {", ".join(n for n, _ in GENERATORS)})')


def class_names(num_classes):
    """Class names used for ``num_classes`` classes, in label order."""
    check_int('num_classes', num_classes, 2, MAX_CLASSES, CLASSES_HINT)
    return sorted(name for name, _ in GENERATORS[:num_classes])


def make_toy_imagenet(out_dir,
                      num_classes=4,
                      train_per_class=80,
                      val_per_class=20,
                      size=64,
                      seed=0,
                      *,
                      verbose=True):
    """Generate the toy dataset under ``out_dir``.

    Existing files are never deleted; files with the names written here are
    overwritten.

    Returns:
        dict: ``out_dir``, ``classes`` (label order), ``num_classes``,
        ``size``, ``seed``, ``seconds``, ``classes_file`` and, per split
        (``'train'``, ``'val'``): ``dir``, ``ann_file``, ``per_class``,
        ``count`` and ``files`` (paths relative to the split folder, in
        annotation order).

    Raises:
        ValueError: an argument is out of range (the message names it).
        OutputDirError: ``out_dir`` or a file in it cannot be written.
    """
    check_int('num_classes', num_classes, 2, MAX_CLASSES, CLASSES_HINT)
    check_int('train_per_class', train_per_class, 1)
    check_int('val_per_class', val_per_class, 1)
    check_int('size', size, MIN_SIZE, MAX_SIZE)
    check_int('seed', seed, 0)
    out_dir = os.fspath(out_dir)
    check_out_dir(out_dir)

    names = class_names(num_classes)

    def render(split_index, name, index):
        rng = np.random.default_rng(
            [seed, split_index, FAMILY_INDEX[name], index])
        return render_pattern(name, size, rng)

    summary = write_class_folders(
        out_dir, names, {'train': train_per_class, 'val': val_per_class},
        render,
        header=(f'Writing toy ImageNet to {out_dir}: {num_classes} classes '
                f'({", ".join(names)}), {train_per_class} train + '
                f'{val_per_class} val images per class, {size}x{size} px, '
                f'seed {seed}'),
        log=print if verbose else (lambda *a, **k: None))
    summary.update(size=size, seed=seed)
    return summary
