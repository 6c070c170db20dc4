#!/usr/bin/env python
"""Generate a small COCO-style instance-segmentation data set of shapes.

The point is an embedded default data set: Mask R-CNN configs can train and
evaluate on a CPU in minutes without downloading COCO. Usage::

    python tools/make_toy_coco.py data/toy_coco [--train 64] [--val 16]
                                  [--seed 0] [--size 320 256]

Layout written (the files of COCO 2017, nothing else)::

    OUT_DIR/annotations/instances_train2017.json
    OUT_DIR/annotations/instances_val2017.json
    OUT_DIR/train2017/000000000001.jpg ...
    OUT_DIR/val2017/000000000001.jpg ...

Each image has a smooth random background (colour gradient, low-frequency
colour noise, some texture) and a few objects of the four ``CLASSES``.
Objects may occlude each other (the mask of an object is what is left VISIBLE
after everything is drawn) and may cross the image border. About one image in
ten has no objects at all. Output depends only on the arguments: every image
draws from its own random stream, seeded by (seed, split, index).

Other tools can call :func:`make_toy_coco` directly.
"""
import argparse
import errno
import json
import math
import os
import sys
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

try:  # optional: OpenCV only speeds up contour tracing, the result is equal
    import cv2
except ImportError:  # pragma: no cover - depends on the environment
    cv2 = None

CLASSES = ('circle', 'square', 'triangle', 'star')
CATEGORIES = [{'id': i + 1, 'name': name, 'supercategory': 'shape'}
              for i, name in enumerate(CLASSES)]
SPLITS = ('train2017', 'val2017')

DEFAULT_SIZE = (320, 256)  # (width, height) before the per-image jitter
SIZE_JITTER = (0.8, 1.1)  # 320 -> widths in [256, 352]: not multiples of 32
OBJECT_SIZE = (24, 110)  # object extent in pixels, before clipping
OBJECTS_PER_IMAGE = (2, 7)  # inclusive, for images that have objects
NEAR_PREVIOUS_PROB = 0.35  # chance to place an object onto an earlier one
MIN_VISIBLE_AREA = 30  # smaller visible remnants are not annotated
MIN_COLOUR_DISTANCE = 90.0  # RGB distance between an object and what it covers
JPEG_QUALITY = 90

# 8-neighbourhood in OpenCV's chain-code order: 0 = right, then counter-
# clockwise on screen (y grows downwards), so 2 = up and 6 = down.
_STEPS = ((1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1))


# --------------------------------------------------------------------------
# Masks to polygons
# --------------------------------------------------------------------------
def _fill_contours(contours, shape):
    """Rasterise closed contours (lists of (x, y)) into a bool mask.

    Interior and boundary are both set; degenerate contours (1 or 2 points)
    become a point or a line so that they still cover their pixels.
    """
    canvas = Image.new('L', (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(canvas)
    for pts in contours:
        pts = [tuple(p) for p in pts]
        if len(pts) == 1:
            draw.point(pts, fill=1)
        elif len(pts) == 2:
            draw.line(pts, fill=1)
        else:
            draw.polygon(pts, fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def _follow_border(rows, x0, y0):
    """Follow the outer border that starts at pixel (x0, y0).

    (x0, y0) must be the first foreground pixel of its component in raster
    order. This is Suzuki & Abe's border following with OpenCV's
    CHAIN_APPROX_SIMPLE compression (only points where the direction
    changes are kept), written so that its output equals
    ``cv2.findContours`` point for point; ``rows`` is the mask as nested
    lists with a zero frame around it.
    """
    # Search clockwise from the left neighbour (background by construction)
    # for the first foreground neighbour: the last pixel of the tour.
    s = 4
    for _ in range(8):
        s = (s - 1) & 7
        dx, dy = _STEPS[s]
        if rows[y0 + dy][x0 + dx]:
            break
    else:  # an isolated pixel
        return [(x0, y0)]
    x1, y1 = x0 + _STEPS[s][0], y0 + _STEPS[s][1]

    points = []
    x3, y3 = x0, y0
    prev_s = s ^ 4  # direction of the closing step, so x0 may be compressed
    while True:
        # Next border pixel: counter-clockwise from the previous one.
        for k in range(1, 9):
            s4 = (s + k) & 7
            dx, dy = _STEPS[s4]
            if rows[y3 + dy][x3 + dx]:
                break
        if s4 != prev_s:
            points.append((x3, y3))
            prev_s = s4
        x4, y4 = x3 + dx, y3 + dy
        if (x4, y4) == (x0, y0) and (x3, y3) == (x1, y1):
            return points
        x3, y3 = x4, y4
        s = (s4 + 4) & 7  # direction pointing back to the previous pixel


def _outer_contours_python(framed):
    """Outer contours of a 0/1 uint8 mask that has a zero frame.

    Same contours as ``cv2.RETR_EXTERNAL``: after tracing a component, its
    filled outline is erased, which removes components inside its holes too.
    """
    rows = framed.tolist()
    work = framed.astype(bool)
    width = framed.shape[1]
    contours = []
    while True:
        fg = np.flatnonzero(work)
        if fg.size == 0:
            return contours
        y0, x0 = divmod(int(fg[0]), width)
        pts = _follow_border(rows, x0, y0)
        contours.append(pts)
        work &= ~_fill_contours([pts], framed.shape)


def _outer_contours_cv2(framed):
    """Outer contours via OpenCV (same result as the Python tracer)."""
    found = cv2.findContours(framed, cv2.RETR_EXTERNAL,
                             cv2.CHAIN_APPROX_SIMPLE)[-2]  # 3.x returns 3
    return [[(int(x), int(y)) for x, y in c.reshape(-1, 2)] for c in found]


def _polygon_area(pts):
    """Absolute shoelace area of a closed polygon."""
    xs = np.array([p[0] for p in pts], dtype=np.float64)
    ys = np.array([p[1] for p in pts], dtype=np.float64)
    return 0.5 * abs(float(np.dot(xs, np.roll(ys, -1)) -
                           np.dot(ys, np.roll(xs, -1))))


def mask_to_polygons(mask, use_cv2=None):
    """Polygons of a bool mask, and the part of the mask they describe.

    Returns ``(polygons, kept)``: ``polygons`` is a list of lists of (x, y)
    pixel centres, one outer contour per connected component (holes are
    not represented, as in COCO polygons), each with at least 3 points and
    a non-zero area; ``kept`` is the mask restricted to those polygons, so
    that one-pixel slivers, which have no polygon, count neither in the
    area nor in the box. ``use_cv2`` None means: when OpenCV imports.
    """
    if use_cv2 is None:
        use_cv2 = cv2 is not None
    # A zero frame: the tracer may look one pixel outside the mask, and
    # OpenCV would otherwise treat the outermost pixels as background.
    framed = np.pad(mask.astype(np.uint8), 1)
    contours = (_outer_contours_cv2 if use_cv2 else
                _outer_contours_python)(framed)
    contours = [[(x - 1, y - 1) for x, y in c] for c in contours]
    # OpenCV lists contours in no documented order: sort by the top-left
    # point (unique, components are disjoint) so both tracers agree.
    contours.sort(key=lambda c: min((y, x) for x, y in c))
    polygons = [c for c in contours
                if len(c) >= 3 and _polygon_area(c) >= 1.0]
    kept = mask & _fill_contours(polygons, mask.shape)
    return polygons, kept


# --------------------------------------------------------------------------
# Image synthesis
# --------------------------------------------------------------------------
def _upsampled_noise(rng, height, width, cells, channels):
    """Smooth noise in [-1, 1]: a coarse random grid resized bicubically."""
    gh = max(2, int(round(height / cells)))
    gw = max(2, int(round(width / cells)))
    grid = rng.uniform(-1.0, 1.0, size=(channels, gh, gw)).astype(np.float32)
    layers = [np.asarray(Image.fromarray(g, mode='F').resize(
        (width, height), Image.BICUBIC)) for g in grid]
    return np.stack(layers, axis=-1)


def _background(rng, height, width):
    """Float RGB background: gradient + low-frequency noise + texture."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # Linear gradient between two random colours in a random direction.
    angle = rng.uniform(0, 2 * math.pi)
    t = xx * math.cos(angle) + yy * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    c0, c1 = rng.uniform(20, 235, size=(2, 3)).astype(np.float32)
    img = c0 + t[..., None] * (c1 - c0)
    # Large, soft colour blotches (lighting, stains).
    img += rng.uniform(15, 45) * _upsampled_noise(
        rng, height, width, cells=rng.uniform(50, 110), channels=3)
    # Texture: either fine grey blotches or a faint wave pattern.
    if rng.random() < 0.5:
        img += rng.uniform(6, 16) * _upsampled_noise(
            rng, height, width, cells=rng.uniform(4, 10), channels=1)
    else:
        fx, fy = rng.uniform(-0.25, 0.25, size=2)
        img += rng.uniform(5, 14) * np.sin(
            fx * xx + fy * yy + rng.uniform(0, 2 * math.pi))[..., None]
    return img


def _shape_outline(rng, category, cx, cy, size):
    """Vertices of a polygon shape, or None for the circle (an ellipse)."""
    r = size / 2.0
    rot = rng.uniform(0, 2 * math.pi)
    if category == 'circle':
        return None
    if category == 'square':
        # Circumradius r, so the diagonal is `size`.
        angles = [rot + k * math.pi / 2 for k in range(4)]
        radii = [r] * 4
    elif category == 'triangle':
        # Near-equilateral: vertex angles jittered for variety.
        angles = [rot + k * 2 * math.pi / 3 + rng.uniform(-0.25, 0.25)
                  for k in range(3)]
        radii = [r] * 3
    else:  # star: five points, alternating outer and inner radius
        inner = r * rng.uniform(0.38, 0.52)
        angles = [rot + k * math.pi / 5 for k in range(10)]
        radii = [r if k % 2 == 0 else inner for k in range(10)]
    return [(cx + rad * math.cos(a), cy + rad * math.sin(a))
            for a, rad in zip(angles, radii)]


def _draw_shape_mask(rng, category, cx, cy, size, height, width):
    """Bool mask of one shape, clipped to the image by construction."""
    canvas = Image.new('L', (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    outline = _shape_outline(rng, category, cx, cy, size)
    if outline is None:
        r = size / 2.0
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    else:
        draw.polygon(outline, fill=1)
    return np.asarray(canvas, dtype=bool)


def _pick_colour(rng, covered):
    """A random colour far enough from the mean colour it is drawn over."""
    colour = None
    for _ in range(20):
        colour = rng.uniform(0, 255, size=3).astype(np.float32)
        if np.linalg.norm(colour - covered) >= MIN_COLOUR_DISTANCE:
            return colour
    # Unlucky draws (rare): the complement is always far from `covered`
    # unless it is mid-grey, then push towards black or white.
    colour = 255.0 - covered
    if np.linalg.norm(colour - covered) < MIN_COLOUR_DISTANCE:
        colour = np.full(3, 0.0 if covered.mean() > 127 else 255.0)
    return colour.astype(np.float32)


def _place_object(rng, previous, height, width):
    """Centre and size of the next object.

    Sometimes put it onto an earlier object so that occlusion is common;
    otherwise anywhere, including partly outside the image.
    """
    lo, hi = OBJECT_SIZE
    hi = min(hi, 0.6 * min(height, width))  # --size may make images small
    size = float(math.exp(rng.uniform(math.log(lo), math.log(max(hi, lo)))))
    if previous and rng.random() < NEAR_PREVIOUS_PROB:
        px, py, psize = previous[rng.integers(len(previous))]
        reach = 0.6 * (psize + size) / 2
        cx = px + rng.uniform(-reach, reach)
        cy = py + rng.uniform(-reach, reach)
    else:
        margin = 0.25 * size
        cx = rng.uniform(-margin, width + margin)
        cy = rng.uniform(-margin, height + margin)
    return cx, cy, size


def render_sample(rng, width, height, with_objects=True):
    """Draw one image.

    Returns ``(rgb, objects)``: ``rgb`` is a uint8 HxWx3 array and
    ``objects`` a list of ``(category_id, visible_mask)`` in drawing order,
    where ``visible_mask`` is the part not covered by later objects (it may
    be empty).
    """
    img = _background(rng, height, width)
    owner = np.full((height, width), -1, dtype=np.int16)  # topmost object
    placed, categories = [], []
    n_objects = rng.integers(OBJECTS_PER_IMAGE[0], OBJECTS_PER_IMAGE[1] + 1)
    for k in range(n_objects if with_objects else 0):
        cat_index = int(rng.integers(len(CLASSES)))
        cx, cy, size = _place_object(rng, placed, height, width)
        mask = _draw_shape_mask(rng, CLASSES[cat_index], cx, cy, size,
                                height, width)
        placed.append((cx, cy, size))
        categories.append(cat_index + 1)
        if not mask.any():  # entirely outside the image
            continue
        colour = _pick_colour(rng, img[mask].mean(axis=0))
        # Mild shading across the object so that it is not a flat fill.
        ys, xs = np.nonzero(mask)
        angle = rng.uniform(0, 2 * math.pi)
        proj = (xs - cx) * math.cos(angle) + (ys - cy) * math.sin(angle)
        shade = 1.0 + rng.uniform(0.05, 0.2) * proj / max(size / 2, 1.0)
        img[ys, xs] = colour * shade[:, None].astype(np.float32)
        owner[ys, xs] = k
    # Soft edges and sensor noise, after composing, as a camera would.
    rgb = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    rgb = np.asarray(rgb.filter(ImageFilter.GaussianBlur(0.6)), np.float32)
    rgb += rng.normal(0.0, 2.5, size=rgb.shape).astype(np.float32)
    rgb = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    objects = [(cat, owner == k) for k, cat in enumerate(categories)]
    return rgb, objects


def sample_rng(seed, split_index, image_index):
    """The random stream of one image: independent of all other images."""
    return np.random.default_rng([seed, split_index, image_index])


def image_size(rng, base_size):
    """Per-image (width, height): the base size jittered by SIZE_JITTER."""
    return tuple(int(rng.integers(round(SIZE_JITTER[0] * d),
                                  round(SIZE_JITTER[1] * d) + 1))
                 for d in base_size)


def empty_image_indices(seed, split_index, num_images):
    """Which images of a split get no objects: about one in ten."""
    n_empty = (num_images + 5) // 10
    rng = np.random.default_rng([seed, split_index, 1 << 30])
    return set(int(i) for i in rng.choice(num_images, n_empty, replace=False))


# --------------------------------------------------------------------------
# COCO records
# --------------------------------------------------------------------------
def open_3x3(mask):
    """Morphological opening of a bool mask with a 3x3 square.

    Removes parts thinner than 3 px, such as the slivers of an occluded
    object that peek out around its occluder: a polygon through pixel
    centres cannot describe them (it rasterises to almost nothing) and
    they are no use as training targets. Outside the array the mask is
    taken to continue its edge, so objects cut by the image border keep
    their border pixels.
    """
    h, w = mask.shape
    padded = np.pad(mask, 1, mode='edge')
    eroded = np.ones_like(mask)
    for dy in range(3):
        for dx in range(3):
            eroded &= padded[dy:dy + h, dx:dx + w]
    padded = np.pad(eroded, 1, mode='edge')
    opened = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            opened |= padded[dy:dy + h, dx:dx + w]
    return opened & mask


def _annotations_for(objects, image_id, first_ann_id):
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
        annotations += _annotations_for(objects, image_id,
                                        len(annotations) + 1)
        if progress and ((index + 1) % every == 0 or index + 1 == num_images):
            progress(f'{split}: {index + 1}/{num_images} images, '
                     f'{len(annotations)} annotations')
    ann_file = os.path.join(out_dir, 'annotations', f'instances_{split}.json')
    _write_json_atomic({
        # Fixed values only (no date): same arguments, same bytes.
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


def make_toy_coco(out_dir, num_train=64, num_val=16, seed=0,
                  size=DEFAULT_SIZE, progress=None):
    """Write the toy data set under ``out_dir`` and return a summary dict.

    Only the annotation files and ``<split>/<12 digits>.jpg`` images are
    written (overwritten when present); nothing else in ``out_dir`` is
    touched. ``progress`` is an optional callable taking a message string.
    Raises ValueError for bad arguments and OSError when ``out_dir`` cannot
    be written.
    """
    for name, value in (('num_train', num_train), ('num_val', num_val)):
        if int(value) != value or value < 1:
            raise ValueError(f'{name} must be an integer >= 1, got {value!r}')
    if int(seed) != seed or seed < 0:
        raise ValueError(f'seed must be an integer >= 0, got {seed!r}')
    if len(size) != 2 or any(int(d) != d or not 64 <= d <= 4096 for d in size):
        raise ValueError(f'size must be two integers in [64, 4096], '
                         f'got {size!r}')
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


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a small COCO-2017-style instance segmentation '
        'data set of shapes (%s).' % ', '.join(CLASSES))
    parser.add_argument('out_dir', help='output directory (created)')
    parser.add_argument('--train', type=int, default=64,
                        help='number of training images (default 64)')
    parser.add_argument('--val', type=int, default=16,
                        help='number of validation images (default 16)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed (default 0)')
    parser.add_argument('--size', type=int, nargs=2, metavar=('W', 'H'),
                        default=list(DEFAULT_SIZE),
                        help='base image size; each image is jittered to '
                        '%.1f-%.1f times it (default %d %d)' %
                        (*SIZE_JITTER, *DEFAULT_SIZE))
    args = parser.parse_args(argv)
    for flag in ('train', 'val'):
        if getattr(args, flag) < 1:
            parser.error(f'--{flag} must be >= 1, got {getattr(args, flag)}')
    if args.seed < 0:
        parser.error(f'--seed must be >= 0, got {args.seed}')
    if not all(64 <= d <= 4096 for d in args.size):
        parser.error('--size W H must both be in [64, 4096], got %d %d'
                     % tuple(args.size))
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        summary = make_toy_coco(args.out_dir, args.train, args.val, args.seed,
                                tuple(args.size), progress=print)
    except OSError as exc:
        # One line naming OUT_DIR, plus the file that failed when it is a
        # different one; a traceback would only obscure that.
        out_dir = os.path.abspath(args.out_dir)
        reason = exc.strerror or str(exc)
        if exc.filename and os.path.abspath(exc.filename) != out_dir:
            reason += f' ({exc.filename})'
        print(f'error: cannot write output directory {out_dir!r}: {reason}',
              file=sys.stderr)
        return 1
    parts = [f"{split} {s['images']} images / {s['annotations']} annotations"
             for split, s in summary['splits'].items()]
    print(f"done in {time.perf_counter() - start:.1f}s: {', '.join(parts)} "
          f"-> {summary['out_dir']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
