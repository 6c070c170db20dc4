"""From rendered object masks to COCO polygons.

COCO describes an instance by polygons; the toy set knows its objects as
pixel masks. Tracing is done by OpenCV (installed with mmengine); what is
here decides which part of a mask is worth a polygon and keeps the area
and box consistent with the polygons actually written.
"""
import cv2
import numpy as np
from PIL import Image, ImageDraw


def fill_contours(contours, shape):
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


def polygon_area(pts):
    """Absolute shoelace area of a closed polygon."""
    xs = np.array([p[0] for p in pts], dtype=np.float64)
    ys = np.array([p[1] for p in pts], dtype=np.float64)
    return 0.5 * abs(float(np.dot(xs, np.roll(ys, -1)) -
                           np.dot(ys, np.roll(xs, -1))))


def _outer_contours(mask):
    """Outer contours of a bool mask as lists of (x, y) pixel centres."""
    # A zero frame: OpenCV would otherwise treat the outermost pixels as
    # background, and objects cut by the image border would lose them.
    framed = np.pad(mask.astype(np.uint8), 1)
    found = cv2.findContours(framed, cv2.RETR_EXTERNAL,
                             cv2.CHAIN_APPROX_SIMPLE)[-2]  # 3.x returns 3
    return [[(int(x) - 1, int(y) - 1) for x, y in c.reshape(-1, 2)]
            for c in found]


def mask_to_polygons(mask):
    """Polygons of a bool mask, and the part of the mask they describe.

    Returns ``(polygons, kept)``: ``polygons`` is a list of lists of (x, y)
    pixel centres, one outer contour per connected component (holes are
    not represented, as in COCO polygons), each with at least 3 points and
    a non-zero area; ``kept`` is the mask restricted to those polygons, so
    that one-pixel slivers, which have no polygon, count neither in the
    area nor in the box.
    """
    contours = _outer_contours(mask)
    # OpenCV lists contours in no documented order: sort by the top-left
    # point (unique, components are disjoint) so the output is stable.
    contours.sort(key=lambda c: min((y, x) for x, y in c))
    polygons = [c for c in contours
                if len(c) >= 3 and polygon_area(c) >= 1.0]
    kept = mask & fill_contours(polygons, mask.shape)
    return polygons, kept


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
