"""The shape renderer shared by the toy detection and classification sets.

Every toy image of shapes is drawn here: a smooth random background
(colour gradient, low-frequency colour blotches, some texture), filled
shapes of the four ``CLASSES`` in colours chosen to stand out from what
they cover, mild shading, then blur and sensor noise over the whole image.
Keeping one renderer means a classifier pretrained on
:func:`render_single_shape` images sees exactly the pixel statistics of
the detection set made of :func:`render_sample` images.

All randomness comes from the numpy ``Generator`` passed in, and the order
of the draws is part of the output: changing it changes every data set
written for a given seed.
"""
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ('circle', 'square', 'triangle', 'star')

OBJECT_SIZE = (24, 110)  # object extent in pixels, before clipping
OBJECTS_PER_IMAGE = (2, 7)  # inclusive, for images that have objects
NEAR_PREVIOUS_PROB = 0.35  # chance to place an object onto an earlier one
MIN_COLOUR_DISTANCE = 90.0  # RGB distance between an object and what it covers

# A single centred shape (classification images): its extent as a fraction
# of the image side, and how far its centre may wander from the middle.
# 0.85 / 2 + 0.07 < 0.5, so the shape always stays inside the image.
SINGLE_SHAPE_EXTENT = (0.35, 0.85)
SINGLE_SHAPE_OFFSET = 0.07


# --------------------------------------------------------------------------
# Background
# --------------------------------------------------------------------------
def _upsampled_noise(rng, height, width, cells, channels):
    """Smooth noise in [-1, 1]: a coarse random grid resized bicubically."""
    gh = max(2, int(round(height / cells)))
    gw = max(2, int(round(width / cells)))
    grid = rng.uniform(-1.0, 1.0, size=(channels, gh, gw)).astype(np.float32)
    layers = [np.asarray(Image.fromarray(g, mode='F').resize(
        (width, height), Image.BICUBIC)) for g in grid]
    return np.stack(layers, axis=-1)


def background(rng, height, width):
    """Float RGB background: gradient + low-frequency noise + texture.

    The structures are sized in pixels, not relative to the image, so that
    small and large images show the same texture at the same scale.
    """
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


# --------------------------------------------------------------------------
# One shape
# --------------------------------------------------------------------------
def shape_outline(rng, category, cx, cy, size):
    """Vertices of a polygon shape, or None for the circle (an ellipse).

    The rotation is drawn even for the circle, so that every category
    consumes the same random draws before its own ones.
    """
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
    elif category == 'star':  # five points, alternating outer/inner radius
        inner = r * rng.uniform(0.38, 0.52)
        angles = [rot + k * math.pi / 5 for k in range(10)]
        radii = [r if k % 2 == 0 else inner for k in range(10)]
    else:
        raise ValueError(f'unknown shape category {category!r}, expected '
                         f'one of {CLASSES}')
    return [(cx + rad * math.cos(a), cy + rad * math.sin(a))
            for a, rad in zip(angles, radii)]


def shape_mask(rng, category, cx, cy, size, height, width):
    """Bool mask of one shape, clipped to the image by construction."""
    canvas = Image.new('L', (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    outline = shape_outline(rng, category, cx, cy, size)
    if outline is None:
        r = size / 2.0
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    else:
        draw.polygon(outline, fill=1)
    return np.asarray(canvas, dtype=bool)


def pick_colour(rng, covered):
    """A random colour far enough from the mean colour it is drawn over,
    so that every object is visible (no camouflage by chance)."""
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


def _paint(rng, img, mask, cx, cy, size):
    """Fill ``mask`` in ``img`` with a contrasting, mildly shaded colour.

    Returns the (ys, xs) pixels painted. The shading makes the fill not
    flat, so that a model cannot find objects by looking for flat areas.
    """
    colour = pick_colour(rng, img[mask].mean(axis=0))
    ys, xs = np.nonzero(mask)
    angle = rng.uniform(0, 2 * math.pi)
    proj = (xs - cx) * math.cos(angle) + (ys - cy) * math.sin(angle)
    shade = 1.0 + rng.uniform(0.05, 0.2) * proj / max(size / 2, 1.0)
    img[ys, xs] = colour * shade[:, None].astype(np.float32)
    return ys, xs


def _finish(rng, img):
    """Soft edges and sensor noise, after composing, as a camera would;
    returns the uint8 RGB image."""
    rgb = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    rgb = np.asarray(rgb.filter(ImageFilter.GaussianBlur(0.6)), np.float32)
    rgb += rng.normal(0.0, 2.5, size=rgb.shape).astype(np.float32)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------
# Scenes
# --------------------------------------------------------------------------
def _place_object(rng, previous, height, width):
    """Centre and size of the next object of a scene.

    Sometimes put it onto an earlier object so that occlusion is common;
    otherwise anywhere, including partly outside the image.
    """
    lo, hi = OBJECT_SIZE
    hi = min(hi, 0.6 * min(height, width))  # small images: smaller objects
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
    """Draw one detection image: a few objects, possibly occluding.

    Returns ``(rgb, objects)``: ``rgb`` is a uint8 HxWx3 array and
    ``objects`` a list of ``(category_id, visible_mask)`` in drawing order
    (category ids start at 1, in ``CLASSES`` order), where
    ``visible_mask`` is the part not covered by later objects (it may be
    empty).
    """
    img = background(rng, height, width)
    owner = np.full((height, width), -1, dtype=np.int16)  # topmost object
    placed, categories = [], []
    # Drawn even for empty images, so that both kinds use the stream alike.
    n_objects = rng.integers(OBJECTS_PER_IMAGE[0], OBJECTS_PER_IMAGE[1] + 1)
    for k in range(n_objects if with_objects else 0):
        cat_index = int(rng.integers(len(CLASSES)))
        cx, cy, size = _place_object(rng, placed, height, width)
        mask = shape_mask(rng, CLASSES[cat_index], cx, cy, size,
                          height, width)
        placed.append((cx, cy, size))
        categories.append(cat_index + 1)
        if not mask.any():  # entirely outside the image
            continue
        ys, xs = _paint(rng, img, mask, cx, cy, size)
        owner[ys, xs] = k
    rgb = _finish(rng, img)
    objects = [(cat, owner == k) for k, cat in enumerate(categories)]
    return rgb, objects


def render_single_shape(rng, category, side):
    """Draw one ``side`` x ``side`` classification image of ``category``.

    One shape, roughly centred and entirely inside, its extent varied over
    ``SINGLE_SHAPE_EXTENT`` of the side (log-uniform, as object sizes in
    the scenes), on the same backgrounds, with the same colours, shading,
    blur and noise as :func:`render_sample`.

    Returns ``(rgb, mask)``: the uint8 HxWx3 image and the bool mask of the
    shape (as drawn, before the blur).
    """
    if category not in CLASSES:
        raise ValueError(f'unknown shape category {category!r}, expected '
                         f'one of {CLASSES}')
    img = background(rng, side, side)
    lo, hi = (f * side for f in SINGLE_SHAPE_EXTENT)
    size = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    dx, dy = rng.uniform(-SINGLE_SHAPE_OFFSET, SINGLE_SHAPE_OFFSET, size=2)
    cx, cy = side * (0.5 + float(dx)), side * (0.5 + float(dy))
    mask = shape_mask(rng, category, cx, cy, size, side, side)
    _paint(rng, img, mask, cx, cy, size)
    return _finish(rng, img), mask
