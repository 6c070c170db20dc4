"""Load a COCO annotation file and check that it is COCO at all.

A json that is not COCO (a list, a dict of something else, a file cut off
half-way) otherwise fails deep inside pycocotools or mmdet with a bare
``KeyError`` or ``TypeError`` that names neither the file nor the field, or
worse, loads as an empty dataset. :func:`load_coco_json` stops at once with
a :class:`CocoFormatError` naming both.

Only the structure is checked here: what every image and category needs to
be usable. Problems of single annotations are data, not format, and are
handled (skipped and reported) by :mod:`.coco_annotation_checks`.
"""
import json
import math

from .errors import CocoFormatError

TOP_LEVEL_KEYS = ('images', 'annotations', 'categories')


def is_number(value):
    """A finite int or float; bools are not numbers here."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def is_id(value):
    """A usable COCO id: an int or a str (bools excluded)."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _type_name(value):
    # JSON's names, which are what a user sees in the file.
    if isinstance(value, dict):
        return 'an object'
    if isinstance(value, list):
        return 'a list'
    if isinstance(value, str):
        return 'a string'
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return 'a number'


def load_coco_json(path, name=None, require_annotations=True):
    """Read a COCO annotation file and check its structure.

    Args:
        path (str): Local path of the json file.
        name (str, optional): The file's name in messages (e.g. the
            dataset's ``ann_file`` when ``path`` is a local copy of a remote
            file). Defaults to ``path``.
        require_annotations (bool): Whether the key ``annotations`` must
            exist. COCO's test-dev image lists have none, so test-mode
            datasets pass False. Defaults to True.

    Returns:
        dict: The parsed file, unchanged.

    Raises:
        CocoFormatError: The file is not JSON, or not COCO.
    """
    name = path if name is None else name
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except UnicodeDecodeError as exc:
        raise CocoFormatError(
            f'{name}: not a COCO annotation file: not UTF-8 text '
            f'({exc.reason} at byte {exc.start})') from None
    except json.JSONDecodeError as exc:
        raise CocoFormatError(
            f'{name}: not a COCO annotation file: not valid JSON '
            f'({exc.msg} at line {exc.lineno}, column {exc.colno})') from None
    check_coco_structure(data, name, require_annotations)
    return data


def check_coco_structure(data, name, require_annotations=True):
    """Raise :class:`CocoFormatError` unless ``data`` is COCO-shaped.

    Checked: the top level is an object with the lists ``images``,
    ``annotations`` and ``categories``; every entry of these lists is an
    object; every image has an ``id``, a ``file_name`` and a positive
    ``width`` and ``height``, and every category an ``id`` and a ``name``;
    image ids and category ids are unique.

    Args:
        data: The parsed json.
        name (str): The file's name in messages.
        require_annotations (bool): See :func:`load_coco_json`.
    """

    def fail(what):
        raise CocoFormatError(f'{name}: not a COCO annotation file: {what}')

    if not isinstance(data, dict):
        fail(f"the top level is {_type_name(data)}, expected an object with "
             f"the keys {', '.join(map(repr, TOP_LEVEL_KEYS))}")
    required = [key for key in TOP_LEVEL_KEYS
                if require_annotations or key != 'annotations']
    missing = [key for key in required if key not in data]
    if missing:
        found = ', '.join(map(repr, list(data)[:8])) or 'none'
        fail(f"missing the key(s) {', '.join(map(repr, missing))} "
             f'(keys found: {found})')
    for key in TOP_LEVEL_KEYS:
        if key not in data:
            continue
        if not isinstance(data[key], list):
            fail(f"'{key}' is {_type_name(data[key])}, expected a list")
        for index, entry in enumerate(data[key]):
            if not isinstance(entry, dict):
                fail(f"'{key}'[{index}] is {_type_name(entry)}, "
                     'expected an object')
    _check_entries(data['images'], 'images', {
        'id': (is_id, 'an int or string'),
        'file_name': (lambda v: isinstance(v, str) and v != '',
                      'a non-empty string'),
        'width': (lambda v: is_number(v) and v > 0, 'a positive number'),
        'height': (lambda v: is_number(v) and v > 0, 'a positive number'),
    }, fail)
    _check_entries(data['categories'], 'categories', {
        'id': (is_id, 'an int or string'),
        'name': (lambda v: isinstance(v, str), 'a string'),
    }, fail)


def _check_entries(entries, key, fields, fail):
    """Check required fields of list entries and that ids are unique."""
    seen = set()
    for index, entry in enumerate(entries):
        for field, (is_valid, expected) in fields.items():
            if field not in entry:
                fail(f"'{key}'[{index}] has no '{field}'")
            if not is_valid(entry[field]):
                fail(f"'{key}'[{index}] has '{field}': "
                     f'{json.dumps(entry[field])[:40]}, expected {expected}')
        if entry['id'] in seen:
            # pycocotools would silently keep only the last of them.
            fail(f"'{key}'[{index}] repeats the id {entry['id']!r}")
        seen.add(entry['id'])
