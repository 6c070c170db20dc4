#!/usr/bin/env python
"""Write a small synthetic classification dataset in ImageNet's folder layout.

The dataset is meant as an embedded default: it is generated in seconds, a
small classifier trained on it on a CPU reaches accuracy far above chance in
a few minutes, and tests can use it without downloading anything.

Usage::

    python tools/make_toy_imagenet.py OUT_DIR [--classes K] \
        [--train-per-class N] [--val-per-class M] [--size S] [--seed SEED]

Layout written (the format of mmpretrain's ``ImageNet`` / ``CustomDataset``)::

    OUT_DIR/train/<class>/<class>_00000.JPEG ...
    OUT_DIR/val/<class>/<class>_00000.JPEG ...
    OUT_DIR/meta/train.txt     lines "<class>/<file>.JPEG <label>"
    OUT_DIR/meta/val.txt       (paths relative to the split folder)
    OUT_DIR/meta/classes.txt   one class name per line, in label order

Labels are 0..K-1 in sorted class-name order, which is the order mmpretrain
gives the folders when it scans ``train/`` without an annotation file, so the
annotation files and a folder scan agree.

Every class is a family of procedural textures (oriented gratings,
checkerboards, blobs, concentric rings, ...).  Each image gets two random
colours drawn from the same distribution for every class, a random gamma,
additive noise and a random crop, so the class is carried by the shape of
the pattern and not by its colour.

A matching mmpretrain dataset config (``classes`` is a path read as given,
not joined with ``data_root``)::

    train_dataloader = dict(
        dataset=dict(
            type='CustomDataset',
            data_root='OUT_DIR',
            ann_file='meta/train.txt',
            data_prefix='train',
            classes='OUT_DIR/meta/classes.txt',
            pipeline=...))

The output is deterministic for a given seed (and library versions).  Images
of one class do not depend on which other classes are generated: the random
stream of each image is keyed on (seed, split, class family, index).
"""
import argparse
import math
import os
import sys
import time

import numpy as np
from PIL import Image

MIN_SIZE = 32
MAX_SIZE = 512
JPEG_QUALITY = 90
SPLITS = ('train', 'val')
# Minimum Euclidean distance (in [0, 1] RGB) between the two colours of an
# image, so that the pattern stays visible.
MIN_COLOUR_DISTANCE = 0.4


class OutputDirError(OSError):
    """The output folder (or a file in it) cannot be written."""


# ---------------------------------------------------------------------------
# Pattern generators.
#
# Each takes a numpy Generator and the coordinate grids ``y, x`` of the
# canvas, in image units (1.0 == the width of the final image; the canvas is
# a bit larger so that it can be cropped), plus ``px``, the size of one pixel
# in the same units (used for soft, anti-aliased edges).  Each returns a
# float32 array in [0, 1] of the grids' shape.
# ---------------------------------------------------------------------------


def _rotated(rng, y, x):
    """Coordinates rotated by a random angle about the canvas centre."""
    theta = rng.uniform(0.0, math.pi)
    cy, cx = y.mean(), x.mean()
    u = (x - cx) * math.cos(theta) + (y - cy) * math.sin(theta)
    v = -(x - cx) * math.sin(theta) + (y - cy) * math.cos(theta)
    return u, v


def _soft_step(d, px):
    """0 -> 1 across about one pixel around ``d == 0`` (d > 0 inside)."""
    return np.clip(0.5 + d / px, 0.0, 1.0)


def gen_stripes(rng, y, x, px):
    """Oriented sinusoidal grating at a random angle, frequency and phase."""
    u, _ = _rotated(rng, y, x)
    freq = rng.uniform(2.5, 8.0)  # cycles per image width
    wave = np.sin(2 * math.pi * freq * u + rng.uniform(0, 2 * math.pi))
    sharp = rng.uniform(1.0, 6.0)  # 1: sinusoid, larger: square-ish wave
    return 0.5 + 0.5 * np.tanh(sharp * wave) / math.tanh(sharp)


def gen_checker(rng, y, x, px):
    """Checkerboard with a random cell size, rotation and offset."""
    u, v = _rotated(rng, y, x)
    cells = rng.uniform(3.0, 8.0)  # cells per image width
    su = np.sin(math.pi * cells * u + rng.uniform(0, 2 * math.pi))
    sv = np.sin(math.pi * cells * v + rng.uniform(0, 2 * math.pi))
    sharp = rng.uniform(4.0, 12.0)
    return 0.5 + 0.5 * np.tanh(sharp * su) * np.tanh(sharp * sv)


def gen_blobs(rng, y, x, px):
    """A few large soft Gaussian blobs at random places."""
    out = np.zeros_like(x)
    lo_y, hi_y = y.min(), y.max()
    lo_x, hi_x = x.min(), x.max()
    for _ in range(rng.integers(3, 8)):
        cy, cx = rng.uniform(lo_y, hi_y), rng.uniform(lo_x, hi_x)
        sigma = rng.uniform(0.06, 0.16)
        amp = rng.uniform(0.5, 1.0)
        out += amp * np.exp(-((y - cy)**2 + (x - cx)**2) / (2 * sigma**2))
    return np.clip(out / max(float(out.max()), 0.5), 0.0, 1.0)


def gen_rings(rng, y, x, px):
    """Concentric circles around a random centre."""
    cy = rng.uniform(y.min() + 0.2, y.max() - 0.2)
    cx = rng.uniform(x.min() + 0.2, x.max() - 0.2)
    r = np.sqrt((y - cy)**2 + (x - cx)**2)
    period = rng.uniform(0.08, 0.22)
    wave = np.sin(2 * math.pi * r / period + rng.uniform(0, 2 * math.pi))
    sharp = rng.uniform(1.0, 6.0)
    return 0.5 + 0.5 * np.tanh(sharp * wave) / math.tanh(sharp)


def gen_dots(rng, y, x, px):
    """Many small hard-edged discs scattered at random."""
    out = np.zeros_like(x)
    radius = rng.uniform(0.03, 0.06)
    lo_y, hi_y = y.min(), y.max()
    lo_x, hi_x = x.min(), x.max()
    for _ in range(rng.integers(15, 40)):
        cy, cx = rng.uniform(lo_y, hi_y), rng.uniform(lo_x, hi_x)
        r = radius * rng.uniform(0.8, 1.25)
        d = r - np.sqrt((y - cy)**2 + (x - cx)**2)
        np.maximum(out, _soft_step(d, px), out=out)
    return out


def gen_triangles(rng, y, x, px):
    """A few large filled triangles (overlaps alternate, like XOR)."""
    out = np.zeros_like(x)
    lo_y, hi_y = y.min(), y.max()
    lo_x, hi_x = x.min(), x.max()
    for _ in range(rng.integers(2, 5)):
        cy, cx = rng.uniform(lo_y, hi_y), rng.uniform(lo_x, hi_x)
        size = rng.uniform(0.25, 0.6)
        start = rng.uniform(0, 2 * math.pi)
        # Roughly equilateral (jittered) so it never degenerates to a sliver.
        angles = start + np.array([0.0, 2.1, 4.2]) + rng.uniform(-.5, .5, 3)
        vy = cy + size * np.sin(angles)
        vx = cx + size * np.cos(angles)
        inside = None
        for i in range(3):  # vertices are counter-clockwise in (x, y)
            ax, ay = vx[i], vy[i]
            bx, by = vx[(i + 1) % 3], vy[(i + 1) % 3]
            length = math.hypot(bx - ax, by - ay)
            d = ((bx - ax) * (y - ay) - (by - ay) * (x - ax)) / length
            inside = d if inside is None else np.minimum(inside, d)
        tri = _soft_step(inside, px)
        out = np.abs(out - tri)  # XOR-like overlap
    return out


def gen_noise(rng, y, x, px):
    """Isotropic band-pass filtered noise at a random scale."""
    h, w = x.shape
    white = rng.standard_normal((h, w))
    fy = np.fft.fftfreq(h, d=px)[:, None]  # cycles per image width
    fx = np.fft.fftfreq(w, d=px)[None, :]
    f = np.sqrt(fy**2 + fx**2)
    centre = rng.uniform(4.0, 10.0)
    band = np.exp(-((f - centre)**2) / (2 * (0.3 * centre)**2))
    field = np.fft.ifft2(np.fft.fft2(white) * band).real
    field /= field.std() + 1e-8
    return (0.5 + 0.5 * np.tanh(rng.uniform(0.6, 1.5) * field))


def gen_gradient(rng, y, x, px):
    """Smooth linear ramp at a random angle, offset and steepness."""
    u, _ = _rotated(rng, y, x)
    gain = rng.uniform(1.0, 3.0)
    return np.clip(0.5 + gain * (u - rng.uniform(-0.15, 0.15)), 0.0, 1.0)


def gen_grid(rng, y, x, px):
    """Thin crossed lines (a lattice) at a random spacing and rotation."""
    u, v = _rotated(rng, y, x)
    spacing = rng.uniform(0.12, 0.25)
    half = 0.5 * spacing * rng.uniform(0.12, 0.25)  # half the line width
    half = max(half, 0.6 * px)
    du = np.abs((u / spacing + rng.uniform()) % 1.0 - 0.5) * spacing
    dv = np.abs((v / spacing + rng.uniform()) % 1.0 - 0.5) * spacing
    return np.maximum(_soft_step(half - du, px), _soft_step(half - dv, px))


def gen_spiral(rng, y, x, px):
    """Archimedean spiral with 1-3 arms around a random centre."""
    cy = rng.uniform(y.min() + 0.2, y.max() - 0.2)
    cx = rng.uniform(x.min() + 0.2, x.max() - 0.2)
    r = np.sqrt((y - cy)**2 + (x - cx)**2)
    phi = np.arctan2(y - cy, x - cx)
    arms = int(rng.integers(1, 4)) * (1 if rng.uniform() < 0.5 else -1)
    spacing = rng.uniform(0.08, 0.2)  # radial distance between arms
    wave = np.sin(2 * math.pi * r / spacing + arms * phi)
    sharp = rng.uniform(1.0, 6.0)
    return 0.5 + 0.5 * np.tanh(sharp * wave) / math.tanh(sharp)


# Order matters: --classes K takes the first K families.  Labels are then
# assigned in sorted name order.
GENERATORS = (
    ('stripes', gen_stripes),
    ('checker', gen_checker),
    ('blobs', gen_blobs),
    ('rings', gen_rings),
    ('dots', gen_dots),
    ('triangles', gen_triangles),
    ('noise', gen_noise),
    ('gradient', gen_gradient),
    ('grid', gen_grid),
    ('spiral', gen_spiral),
)
MAX_CLASSES = len(GENERATORS)
_FAMILY_INDEX = {name: i for i, (name, _) in enumerate(GENERATORS)}
_GENERATOR = dict(GENERATORS)


def class_names(num_classes):
    """Class names used for ``num_classes`` classes, in label order."""
    _check_int('num_classes', num_classes, 2, MAX_CLASSES)
    return sorted(name for name, _ in GENERATORS[:num_classes])


def render_image(name, size, rng):
    """Render one ``size`` x ``size`` RGB uint8 image of class ``name``."""
    pad = max(4, size // 4)
    canvas = size + pad
    px = 1.0 / size
    coords = (np.arange(canvas, dtype=np.float32) + 0.5) * px
    y, x = np.meshgrid(coords, coords, indexing='ij')
    pattern = _GENERATOR[name](rng, y, x, px).astype(np.float32)

    # Random crop (= random shift of the pattern).
    oy, ox = rng.integers(0, pad + 1, size=2)
    pattern = pattern[oy:oy + size, ox:ox + size]
    if rng.uniform() < 0.5:
        pattern = pattern[:, ::-1]

    # Random contrast curve, then two random colours from one distribution
    # for every class: colour carries no class information.
    pattern = np.clip(pattern, 0.0, 1.0)**rng.uniform(0.7, 1.4)
    while True:
        c0, c1 = rng.uniform(0.0, 1.0, size=(2, 3))
        if np.linalg.norm(c1 - c0) >= MIN_COLOUR_DISTANCE:
            break
    img = c0 + pattern[..., None] * (c1 - c0)[None, None, :]
    img += rng.normal(0.0, rng.uniform(0.0, 0.05), size=img.shape)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _check_int(arg, value, lo, hi=None):
    """Raise ValueError naming ``arg`` unless lo <= value (<= hi)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f'{arg} must be an integer, got {value!r}')
    if value < lo or (hi is not None and value > hi):
        rng = f'between {lo} and {hi}' if hi is not None else f'>= {lo}'
        extra = ''
        if arg in ('num_classes', '--classes'):
            extra = (f' (the maximum is {MAX_CLASSES}, the number of '
                     f'pattern families: '
                     f'{", ".join(n for n, _ in GENERATORS)})')
        raise ValueError(f'{arg} must be {rng}, got {value}{extra}')


def _makedirs(path):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise OutputDirError(
            f'cannot create folder {path!r}: '
            f'{e.strerror or e.__class__.__name__}') from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputDirError(f'folder {path!r} is not writable')


def _write_text(path, lines):
    try:
        with open(path, 'w', encoding='utf-8') as f:
            f.write(''.join(line + '\n' for line in lines))
    except OSError as e:
        raise OutputDirError(f'cannot write {path!r}: '
                             f'{e.strerror or e.__class__.__name__}') from None


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
    _check_int('num_classes', num_classes, 2, MAX_CLASSES)
    _check_int('train_per_class', train_per_class, 1)
    _check_int('val_per_class', val_per_class, 1)
    _check_int('size', size, MIN_SIZE, MAX_SIZE)
    _check_int('seed', seed, 0)
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise OutputDirError(
            f'output path {out_dir!r} exists and is not a folder')

    log = print if verbose else (lambda *a, **k: None)
    start = time.perf_counter()
    names = class_names(num_classes)
    counts = {'train': train_per_class, 'val': val_per_class}
    meta_dir = os.path.join(out_dir, 'meta')
    _makedirs(out_dir)
    _makedirs(meta_dir)

    summary = {
        'out_dir': out_dir,
        'classes': list(names),
        'num_classes': num_classes,
        'size': size,
        'seed': seed,
        'classes_file': os.path.join(meta_dir, 'classes.txt'),
    }
    log(f'Writing toy ImageNet to {out_dir}: {num_classes} classes '
        f'({", ".join(names)}), {train_per_class} train + {val_per_class} '
        f'val images per class, {size}x{size} px, seed {seed}')
    stale = []
    for split_id, split in enumerate(SPLITS):
        split_dir = os.path.join(out_dir, split)
        lines, files = [], []
        for label, name in enumerate(names):
            class_dir = os.path.join(split_dir, name)
            _makedirs(class_dir)
            written = set()
            for i in range(counts[split]):
                rng = np.random.default_rng(
                    [seed, split_id, _FAMILY_INDEX[name], i])
                fname = f'{name}_{i:05d}.JPEG'
                path = os.path.join(class_dir, fname)
                try:
                    Image.fromarray(render_image(name, size, rng)).save(
                        path, format='JPEG', quality=JPEG_QUALITY)
                except OSError as e:
                    raise OutputDirError(
                        f'cannot write {path!r}: '
                        f'{e.strerror or e.__class__.__name__}') from None
                written.add(fname)
                rel = f'{name}/{fname}'
                files.append(rel)
                lines.append(f'{rel} {label}')
            stale += [
                os.path.join(class_dir, f) for f in sorted(
                    os.listdir(class_dir)) if f not in written
            ]
            log(f'  [{split}] {label}: {name:<10s} {counts[split]} images')
        # Class folders left by an earlier run with more classes.
        stale += [
            os.path.join(split_dir, d) for d in sorted(os.listdir(split_dir))
            if d not in names
        ]
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

    if stale:
        shown = '\n    '.join(stale[:5])
        more = f'\n    ... and {len(stale) - 5} more' if len(stale) > 5 else ''
        log(f'WARNING: {len(stale)} entries in the split folders were not '
            f'written by this run and are not listed in meta/*.txt (left '
            f'untouched; a folder scan without ann_file would see them):\n'
            f'    {shown}{more}')
    log(f'Done in {summary["seconds"]:.1f} s: '
        f'{summary["train"]["count"]} train + {summary["val"]["count"]} val '
        f'images in {num_classes} classes under {out_dir}\n'
        f'  annotations: {summary["train"]["ann_file"]}, '
        f'{summary["val"]["ann_file"]}\n'
        f'  classes:     {summary["classes_file"]}')
    return summary


def _int_arg(arg, lo, hi=None):
    """argparse ``type`` that checks a range; errors name the argument."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'must be an integer, got {text!r}') from None
        try:
            _check_int(arg, value, lo, hi)
        except ValueError as e:
            # argparse already prefixes "argument <arg>: ".
            raise argparse.ArgumentTypeError(
                str(e).replace(f'{arg} ', '', 1)) from None
        return value

    parse.__name__ = arg.lstrip('-')
    return parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a small synthetic image classification dataset '
        'in ImageNet folder layout (train/, val/, meta/*.txt).')
    parser.add_argument('out_dir', metavar='OUT_DIR', help='output folder')
    parser.add_argument(
        '--classes',
        type=_int_arg('--classes', 2, MAX_CLASSES),
        default=4,
        help=f'number of classes, 2..{MAX_CLASSES} (default: 4)')
    parser.add_argument(
        '--train-per-class',
        type=_int_arg('--train-per-class', 1),
        default=80,
        help='training images per class (default: 80)')
    parser.add_argument(
        '--val-per-class',
        type=_int_arg('--val-per-class', 1),
        default=20,
        help='validation images per class (default: 20)')
    parser.add_argument(
        '--size',
        type=_int_arg('--size', MIN_SIZE, MAX_SIZE),
        default=64,
        help=f'image side in pixels, {MIN_SIZE}..{MAX_SIZE} (default: 64)')
    parser.add_argument(
        '--seed',
        type=_int_arg('--seed', 0),
        default=0,
        help='random seed (default: 0)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        make_toy_imagenet(
            args.out_dir,
            num_classes=args.classes,
            train_per_class=args.train_per_class,
            val_per_class=args.val_per_class,
            size=args.size,
            seed=args.seed)
    except OutputDirError as e:
        print(f'{os.path.basename(sys.argv[0]) or "make_toy_imagenet.py"}: '
              f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
