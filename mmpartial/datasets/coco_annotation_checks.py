"""Find the annotations of a COCO file that cannot be trained on.

mmdet drops some of them without a word (degenerate boxes, unknown
categories, annotations of images that do not exist) and crashes on others
(an annotation without ``bbox`` or ``area``, one without a mask when the
pipeline loads masks), which leaves a user with a smaller dataset than they
think or a ``KeyError`` hours into training. Here each problem becomes one
:class:`AnnotationProblem` that names the image file and the annotation id,
so that the dataset can skip it and say so.
"""
from collections import namedtuple

from .coco_format import is_id, is_number

AnnotationProblem = namedtuple('AnnotationProblem',
                               ['ann_id', 'file_name', 'message', 'skipped'])
AnnotationProblem.__doc__ = """One bad annotation.

Args:
    ann_id: The annotation's ``id`` (``'#<index>'`` if it has none).
    file_name (str | None): The image's file name; None when the
        annotation refers to an image that is not in ``images``.
    message (str): What is wrong and what was done about it.
    skipped (bool): True if the whole annotation is dropped, False if only
        some of its polygons are.
"""

MIN_POLYGON_COORDS = 6  # three (x, y) points: anything less has no area


def format_problem(ann_file, problem):
    """One log line for a problem: json file, image file, annotation id."""
    if problem.file_name is None:
        where = f'annotation {problem.ann_id}'
    else:
        where = (f'image {problem.file_name!r}, '
                 f'annotation {problem.ann_id}')
    return f'{ann_file}: {where}: {problem.message}'


def check_annotations(coco, check_masks=False):
    """Split the annotations of a structurally valid COCO dict.

    Each annotation is checked for: an id that is unique; an ``image_id``
    that is in ``images``; a ``category_id`` that is in ``categories``; a
    ``bbox`` of four numbers with width and height of at least one pixel
    that overlaps its image; a positive ``area``; polygons of at least
    three points (bad polygons are dropped, the annotation only if none is
    left); and, with ``check_masks``, a segmentation at all.

    Args:
        coco (dict): Passed :func:`.coco_format.check_coco_structure`.
        check_masks (bool): Whether an annotation needs a segmentation
            (the pipeline loads masks). Defaults to False.

    Returns:
        tuple[list[dict], list[AnnotationProblem]]: The annotations to use,
        in file order (those with dropped polygons are copies, the input is
        not changed), and the problems in file order.
    """
    images = {image['id']: image for image in coco['images']}
    category_ids = {category['id'] for category in coco['categories']}
    kept, problems, seen_ids = [], [], set()
    for index, ann in enumerate(coco.get('annotations', [])):
        has_id = is_id(ann.get('id'))
        ann_id = ann['id'] if has_id else f'#{index}'
        # Ids of the wrong type (a list, say) would not even hash.
        image_id = ann.get('image_id')
        image = images.get(image_id) if is_id(image_id) else None
        file_name = None if image is None else image['file_name']
        if not has_id:
            message = "it has no valid 'id'"
        elif ann_id in seen_ids:
            message = f'the id {ann_id!r} is used by an earlier annotation'
        else:
            seen_ids.add(ann_id)
            message = _whole_annotation_problem(ann, image, category_ids,
                                                check_masks)
        if message is not None:
            problems.append(AnnotationProblem(
                ann_id, file_name, message + '; annotation skipped', True))
            continue
        ann, message = _drop_bad_polygons(ann)
        if message is not None:
            problems.append(AnnotationProblem(ann_id, file_name, message,
                                              skipped=ann is None))
        if ann is not None:
            kept.append(ann)
    return kept, problems


def _whole_annotation_problem(ann, image, category_ids, check_masks):
    """Why the whole annotation is unusable, or None."""
    if image is None:
        return (f"its image_id {ann.get('image_id')!r} is not an image in "
                "'images'")
    category_id = ann.get('category_id')
    if not is_id(category_id) or category_id not in category_ids:
        return (f"its category_id {ann.get('category_id')!r} is not in "
                "'categories'")
    bbox = ann.get('bbox')
    if not (isinstance(bbox, list) and len(bbox) == 4
            and all(is_number(v) for v in bbox)):
        return f"its bbox {bbox!r} is not [x, y, width, height]"
    x, y, w, h = bbox
    if w < 1 or h < 1:
        return f'degenerate box {bbox} (width or height < 1 pixel)'
    area = ann.get('area')
    if not is_number(area) or area <= 0:
        return f'zero or invalid area {area!r}'
    if (min(x + w, image['width']) <= max(x, 0)
            or min(y + h, image['height']) <= max(y, 0)):
        return (f"box {bbox} lies outside the {image['width']}x"
                f"{image['height']} image")
    segmentation = ann.get('segmentation')
    if isinstance(segmentation, dict):
        if 'counts' not in segmentation or 'size' not in segmentation:
            return "its RLE segmentation has no 'counts' or 'size'"
    elif segmentation is not None and not isinstance(segmentation, list):
        return (f'its segmentation is a {type(segmentation).__name__}, '
                'not polygons or RLE')
    elif check_masks and not segmentation:
        # mmdet's LoadAnnotations(with_mask=True) would raise KeyError.
        return 'it has no segmentation, and the pipeline loads masks'
    return None


def _drop_bad_polygons(ann):
    """Remove polygons of fewer than three points.

    Returns ``(ann, message)``: ``ann`` unchanged and None if all polygons
    are fine; a copy without the bad ones and a message if some are; None
    and a message if none is left.
    """
    polygons = ann.get('segmentation')
    if not isinstance(polygons, list) or not polygons:
        return ann, None
    good, bad = [], []
    for k, polygon in enumerate(polygons):
        if not (isinstance(polygon, list)
                and all(is_number(v) for v in polygon)):
            bad.append(f'polygon {k} is not a list of numbers')
        elif len(polygon) < MIN_POLYGON_COORDS:
            bad.append(f'polygon {k} has {len(polygon) // 2} point(s) '
                       '(fewer than 3)')
        elif len(polygon) % 2:
            bad.append(f'polygon {k} has an odd number of coordinates '
                       f'({len(polygon)})')
        else:
            good.append(polygon)
    if not bad:
        return ann, None
    if not good:
        return None, '; '.join(bad) + '; no polygon left, annotation skipped'
    return (dict(ann, segmentation=good),
            '; '.join(bad) + f'; dropped, {len(good)} polygon(s) kept')
