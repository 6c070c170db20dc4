"""Writing a classification set in ImageNet's folder layout.

Layout (the format of mmpretrain's ``ImageNet`` / ``CustomDataset``)::

    OUT_DIR/train/<class>/<class>_00000.JPEG ...
    OUT_DIR/val/<class>/<class>_00000.JPEG ...
    OUT_DIR/meta/train.txt     lines "<class>/<file>.JPEG <label>"
    OUT_DIR/meta/val.txt       (paths relative to the split folder)
    OUT_DIR/meta/classes.txt   one class name per line, in label order

Callers give the class names in sorted order, which is the order mmpretrain
gives the folders when it scans ``train/`` without an annotation file, so
the annotation files and a folder scan agree on the labels.

Existing files are never deleted (the folder may hold someone's data);
files with the names written here are overwritten, and entries this run
did not write are listed in a warning.
"""
import os
import time

from PIL import Image

SPLITS = ('train', 'val')
MIN_SIZE = 32  # image side limits of the classification sets
MAX_SIZE = 512
JPEG_QUALITY = 90


class OutputDirError(OSError):
    """The output folder (or a file in it) cannot be written."""


def check_out_dir(out_dir):
    """Refuse an ``out_dir`` that is a file, before anything is written."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise OutputDirError(
            f'output path {out_dir!r} exists and is not a folder')


def _makedirs(path):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise OutputDirError(
            f'cannot create folder {path!r}: '
            f'{e.strerror or e.__class__.__name__}') from None
    # makedirs succeeds on an existing read-only folder: say so now rather
    # than on the first image.
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputDirError(f'folder {path!r} is not writable')


def _write_text(path, lines):
    try:
        with open(path, 'w', encoding='utf-8') as f:
            f.write(''.join(line + '\n' for line in lines))
    except OSError as e:
        raise OutputDirError(f'cannot write {path!r}: '
                             f'{e.strerror or e.__class__.__name__}') from None


def _save_jpeg(rgb, path):
    try:
        Image.fromarray(rgb).save(path, format='JPEG', quality=JPEG_QUALITY)
    except OSError as e:
        raise OutputDirError(f'cannot write {path!r}: '
                             f'{e.strerror or e.__class__.__name__}') from None


def _warn_stale(stale, log):
    if not stale:
        return
    shown = '\n    '.join(stale[:5])
    more = f'\n    ... and {len(stale) - 5} more' if len(stale) > 5 else ''
    log(f'WARNING: {len(stale)} entries in the split folders were not '
        f'written by this run and are not listed in meta/*.txt (left '
        f'untouched; a folder scan without ann_file would see them):\n'
        f'    {shown}{more}')


def write_class_folders(out_dir, names, counts, render, *, header, log):
    """Render and write a classification set; return its summary.

    Args:
        out_dir (str): The output folder (created).
        names (list[str]): Class names in label order (sorted, see above).
        counts (dict): Images per class of each split, ``{'train': N,
            'val': M}``.
        render (callable): ``render(split_index, name, index)`` returns the
            uint8 HxWx3 image ``index`` of class ``name`` in split
            ``SPLITS[split_index]``.
        header (str): Logged once the folders exist, before any image.
        log (callable): Takes one message string (``print`` or a no-op).

    Returns:
        dict: ``out_dir``, ``classes``, ``num_classes``, ``classes_file``,
        ``seconds`` and, per split: ``dir``, ``ann_file``, ``per_class``,
        ``count`` and ``files`` (paths relative to the split folder, in
        annotation order).
    """
    start = time.perf_counter()
    meta_dir = os.path.join(out_dir, 'meta')
    _makedirs(out_dir)
    _makedirs(meta_dir)
    summary = {
        'out_dir': out_dir,
        'classes': list(names),
        'num_classes': len(names),
        'classes_file': os.path.join(meta_dir, 'classes.txt'),
    }
    log(header)
    stale = []
    for split_index, split in enumerate(SPLITS):
        split_dir = os.path.join(out_dir, split)
        lines, files = [], []
        for label, name in enumerate(names):
            class_dir = os.path.join(split_dir, name)
            _makedirs(class_dir)
            written = set()
            for i in range(counts[split]):
                fname = f'{name}_{i:05d}.JPEG'
                _save_jpeg(render(split_index, name, i),
                           os.path.join(class_dir, fname))
                written.add(fname)
                rel = f'{name}/{fname}'
                files.append(rel)
                lines.append(f'{rel} {label}')
            stale += [os.path.join(class_dir, f)
                      for f in sorted(os.listdir(class_dir))
                      if f not in written]
            log(f'  [{split}] {label}: {name:<10s} {counts[split]} images')
        # Class folders left by an earlier run with more classes.
        stale += [os.path.join(split_dir, d)
                  for d in sorted(os.listdir(split_dir)) if d not in names]
        ann_file = os.path.join(meta_dir, f'{split}.txt')
        _write_text(ann_file, lines)
        summary[split] = {
            'dir': split_dir,
            'ann_file': ann_file,
            'per_class': counts[split],
            'count': len(files),
            'files': files,
        }
    _write_text(summary['classes_file'], names)
    summary['seconds'] = time.perf_counter() - start

    _warn_stale(stale, log)
    log(f'Done in {summary["seconds"]:.1f} s: '
        f'{summary["train"]["count"]} train + {summary["val"]["count"]} val '
        f'images in {len(names)} classes under {out_dir}\n'
        f'  annotations: {summary["train"]["ann_file"]}, '
        f'{summary["val"]["ann_file"]}\n'
        f'  classes:     {summary["classes_file"]}')
    return summary
