"""Procedural texture families: the classes of the toy ImageNet.

Every class is a family of textures (oriented gratings, checkerboards,
blobs, concentric rings, ...). Each image gets two random colours drawn
from the same distribution for every class, a random gamma, additive noise
and a random crop, so the class is carried by the shape of the pattern and
not by its colour.

Each generator takes a numpy Generator and the coordinate grids ``y, x``
of the canvas, in image units (1.0 == the width of the final image; the
canvas is a bit larger so that it can be cropped), plus ``px``, the size
of one pixel in the same units (used for soft, anti-aliased edges). Each
returns a float32 array in [0, 1] of the grids' shape.
"""
import math

import numpy as np

# Minimum Euclidean distance (in [0, 1] RGB) between the two colours of an
# image, so that the pattern stays visible.
MIN_COLOUR_DISTANCE = 0.4


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


# Order matters: the toy ImageNet with K classes takes the first K
# families, and FAMILY_INDEX keys the random stream of each image.
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
FAMILY_INDEX = {name: i for i, (name, _) in enumerate(GENERATORS)}
_GENERATOR = dict(GENERATORS)


def render_pattern(name, size, rng):
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
