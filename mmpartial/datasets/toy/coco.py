"""The toy COCO set: a small instance-segmentation data set of shapes.

It is the embedded default data set: Mask R-CNN configs can train and
evaluate on a CPU in minutes without downloading COCO. Layout written (the
files of COCO 2017, nothing else)::

    OUT_DIR/annotations/instances_train2017.json
    OUT_DIR/annotations/instances_val2017.json
    OUT_DIR/train2017/000000000001.jpg ...
    OUT_DIR/val2017/000000000001.jpg ...

Images come from :func:`~.shapes.render_sample`: a few objects of the four
``CLASSES`` that may occlude each other (the mask of an object is what is
left VISIBLE after everything is drawn) and may cross the image border.
About one image in ten has no objects at all. Output depends only on the
arguments: every image draws from its own random stream, seeded by
(seed, split, index), so images do not change with the number of images.
"""
import errno
import json
import os

import numpy as np
from PIL import Image

from .polygons import mask_to_polygons, open_3x3
from .shapes import CLASSES, render_sample

CATEGORIES = [{'id': i + 1, 'name': name, 'supercategory': 'shape'}
              for i, name in enumerate(CLASSES)]
SPLITS = ('train2017', 'val2017')

DEFAULT_SIZE = (320, 256)  # (width, height) before the per-image jitter
SIZE_JITTER = (0.8, 1.1)  # 320 -> widths in [256, 352]: not multiples of 32
SIZE_RANGE = (64, 4096)  # allowed base width and height
MIN_VISIBLE_AREA = 30  # smaller visible remnants are not annotated
JPEG_QUALITY = 90


def sample_rng(seed, split_index, image_index):
    """The random stream of one image: independent of all other images."""
    return np.random.default_rng([seed, split_index, image_index])


def image_size(rng, base_size):
    """Per-image (width, height): the base size jittered by SIZE_JITTER, so
    that models meet sizes that are not multiples of their strides."""
    return tuple(int(rng.integers(round(SIZE_JITTER[0] * d),
                                  round(SIZE_JITTER[1] * d) + 1))
                 for d in base_size)


def empty_image_indices(seed, split_index, num_images):
    """Which images of a split get no objects: about one in ten (real data
    has such images, and they must not break training or evaluation)."""
    n_empty = (num_images + 5) // 10
    rng = np.random.default_rng([seed, split_index, 1 << 30])
    return set(int(i) for i in rng.choice(num_images, n_empty, replace=False))


def annotations_for(objects, image_id, first_ann_id):
    """COCO annotation dicts for the visible objects of one image."""
    anns = []
    for cat_id, visible in objects:
        if visible.sum() < MIN_VISIBLE_AREA:
            continue
        # Work on the object's box plus a margin only: tracing is per pixel.
        # Clamping the margin at the image border makes open_3x3 treat the
        # object as continuing there, and the zero margin elsewhere as
        # background, which both are.
        ys, xs = np.nonzero(visible)
        x0, y0 = max(int(xs.min()) - 2, 0), max(int(ys.min()) - 2, 0)
        crop = open_3x3(visible[y0:int(ys.max()) + 3, x0:int(xs.max()) + 3])
        polygons, kept = mask_to_polygons(crop)
        area = int(kept.sum())
        if area < MIN_VISIBLE_AREA:
            continue
        kys, kxs = np.nonzero(kept)
        bbox = [x0 + int(kxs.min()), y0 + int(kys.min()),
                int(kxs.max() - kxs.min()) + 1,
                int(kys.max() - kys.min()) + 1]
        segmentation = [[v for x, y in poly for v in (x + x0, y + y0)]
                        for poly in polygons]
        anns.append({'id': first_ann_id + len(anns), 'image_id': image_id,
                     'category_id': cat_id, 'segmentation': segmentation,
                     'area': area, 'bbox': bbox, 'iscrowd': 0})
    return anns


def _write_json_atomic(data, path):
    """Write JSON through a temporary file, so no half-written file stays."""
    tmp = os.path.join(os.path.dirname(path),
                       '.' + os.path.basename(path) + '.tmp')
    try:
        with open(tmp, 'w') as f:
            json.dump(data, f, separators=(',', ':'))
            f.write('\n')
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):  # only our own temporary file
            os.remove(tmp)


def _make_split(out_dir, split_index, num_images, seed, base_size, progress):
    """Render and write one split; return its summary dict."""
    split = SPLITS[split_index]
    img_dir = os.path.join(out_dir, split)
    os.makedirs(img_dir, exist_ok=True)
    empty = empty_image_indices(seed, split_index, num_images)
    images, annotations = [], []
    every = max(1, num_images // 4)
    for index in range(num_images):
        rng = sample_rng(seed, split_index, index)
        width, height = image_size(rng, base_size)
        rgb, objects = render_sample(rng, width, height,
                                     with_objects=index not in empty)
        image_id = index + 1
        file_name = f'{image_id:012d}.jpg'
        Image.fromarray(rgb).save(os.path.join(img_dir, file_name),
                                  quality=JPEG_QUALITY)
        images.append({'id': image_id, 'file_name': file_name,
                       'width': width, 'height': height, 'license': 1})
        annotations += annotations_for(objects, image_id,
                                       len(annotations) + 1)
        if progress and ((index + 1) % every == 0 or index + 1 == num_images):
            progress(f'{split}: {index + 1}/{num_images} images, '
                     f'{len(annotations)} annotations')
    ann_file = os.path.join(out_dir, 'annotations', f'instances_{split}.json')
    _write_json_atomic({
        # Fixed values only (no date): same arguments, same bytes. The
        # description names the tool, as in the files written before the
        # generator moved into the package.
        'info': {
            'description': 'mmpartial toy shapes (tools/make_toy_coco.py)',
            'version': '1.0', 'year': 2025, 'contributor': 'mmpartial',
            'seed': seed},
        'licenses': [{'id': 1, 'name': 'Public Domain (synthetic)',
                      'url': ''}],
        'images': images, 'annotations': annotations,
        'categories': CATEGORIES,
    }, ann_file)
    with_anns = {a['image_id'] for a in annotations}
    return {'images': len(images), 'annotations': len(annotations),
            'images_without_annotations': len(images) - len(with_anns),
            'ann_file': ann_file, 'img_dir': img_dir}


def check_coco_args(num_train, num_val, seed, size):
    """Raise ValueError naming the first bad argument of make_toy_coco."""
    for name, value in (('num_train', num_train), ('num_val', num_val)):
        if int(value) != value or value < 1:
            raise ValueError(f'{name} must be an integer >= 1, got {value!r}')
    if int(seed) != seed or seed < 0:
        raise ValueError(f'seed must be an integer >= 0, got {seed!r}')
    lo, hi = SIZE_RANGE
    if len(size) != 2 or any(int(d) != d or not lo <= d <= hi for d in size):
        raise ValueError(f'size must be two integers in [{lo}, {hi}], '
                         f'got {size!r}')


def make_toy_coco(out_dir, num_train=64, num_val=16, seed=0,
                  size=DEFAULT_SIZE, progress=None):
    """Write the toy data set under ``out_dir`` and return a summary dict.

    Only the annotation files and ``<split>/<12 digits>.jpg`` images are
    written (overwritten when present); nothing else in ``out_dir`` is
    touched. ``progress`` is an optional callable taking a message string.
    Raises ValueError for bad arguments and OSError when ``out_dir`` cannot
    be written.
    """
    check_coco_args(num_train, num_val, seed, size)
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        # makedirs would only say 'Not a directory: OUT_DIR/annotations'.
        raise NotADirectoryError(errno.ENOTDIR,
                                 'it exists and is not a directory', out_dir)
    os.makedirs(os.path.join(out_dir, 'annotations'), exist_ok=True)
    summary = {'out_dir': out_dir, 'seed': int(seed), 'classes': CLASSES,
               'splits': {}}
    for split_index, num in enumerate((int(num_train), int(num_val))):
        summary['splits'][SPLITS[split_index]] = _make_split(
            out_dir, split_index, num, int(seed), tuple(map(int, size)),
            progress)
    return summary


def output_error_message(exc, out_dir):
    """One line for an OSError of :func:`make_toy_coco`, naming OUT_DIR and
    the file that failed when it is another one (a traceback would only
    obscure that)."""
    out_dir = os.path.abspath(out_dir)
    reason = exc.strerror or str(exc)
    if exc.filename and os.path.abspath(exc.filename) != out_dir:
        reason += f' ({exc.filename})'
    return f'cannot write output directory {out_dir!r}: {reason}'
