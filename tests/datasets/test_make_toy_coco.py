"""Tests for the toy COCO set: mmpartial.datasets.toy and its command line
tools/make_toy_coco.py."""
import contextlib
import io
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tool_main import run_main
from mmpartial.datasets.toy import (CLASSES, DEFAULT_SIZE, MIN_VISIBLE_AREA,
                                    SPLITS, empty_image_indices, image_size,
                                    make_toy_coco, mask_to_polygons,
                                    open_3x3, render_sample, sample_rng)

COCO = pytest.importorskip('pycocotools.coco').COCO

REPO = Path(__file__).resolve().parents[2]
TOOL = Path('tools') / 'make_toy_coco.py'  # run from the repository root
NUM_TRAIN, NUM_VAL = 12, 4


def _load_coco(ann_file):
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints timings
        return COCO(str(ann_file))


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    """One small data set shared by the read-only tests."""
    out = tmp_path_factory.mktemp('toy')
    summary = make_toy_coco(out, NUM_TRAIN, NUM_VAL, seed=0)
    cocos = {split: _load_coco(out / 'annotations' / f'instances_{split}.json')
             for split in SPLITS}
    return out, summary, cocos


def _all_anns(cocos):
    return [(split, c, a) for split, c in cocos.items()
            for a in c.anns.values()]


def _bbox_iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    inter = max(iw, 0) * max(ih, 0)
    return inter / float(aw * ah + bw * bh - inter)


def cli(capsys, *args):
    """The tool's ``main`` in this process (the bad-input tests)."""
    return run_main('make_toy_coco.py', capsys, *args)


def _run_cli(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)],
                          cwd=REPO, capture_output=True, text=True,
                          timeout=120)


# --------------------------------------------------------------------------
# Layout and COCO structure
# --------------------------------------------------------------------------
def test_layout_summary_and_categories(toy):
    out, summary, cocos = toy
    assert CLASSES == ('circle', 'square', 'triangle', 'star')
    assert summary['out_dir'] == str(out)
    for split, num in zip(SPLITS, (NUM_TRAIN, NUM_VAL)):
        coco, info = cocos[split], summary['splits'][split]
        assert set(coco.dataset) == {'info', 'licenses', 'images',
                                     'annotations', 'categories'}
        assert coco.dataset['categories'] == [
            {'id': i + 1, 'name': n, 'supercategory': 'shape'}
            for i, n in enumerate(CLASSES)]
        assert info['images'] == len(coco.imgs) == num
        assert info['annotations'] == len(coco.anns)
        assert len({a['id'] for a in coco.anns.values()}) == len(coco.anns)
        for img in coco.imgs.values():
            path = out / split / img['file_name']
            with Image.open(path) as im:
                assert im.format == 'JPEG' and im.mode == 'RGB'
                assert im.size == (img['width'], img['height'])


def test_image_sizes_vary_around_default(toy):
    _, _, cocos = toy
    sizes = [(img['width'], img['height'])
             for c in cocos.values() for img in c.imgs.values()]
    assert all(256 <= w <= 352 for w, _ in sizes)
    assert all(205 <= h <= 282 for _, h in sizes)
    assert len(set(sizes)) > 1
    assert any(w % 32 or h % 32 for w, h in sizes)


# --------------------------------------------------------------------------
# Annotation geometry
# --------------------------------------------------------------------------
def test_polygons_boxes_and_areas_are_consistent(toy):
    _, _, cocos = toy
    anns = _all_anns(cocos)
    assert anns
    for _, coco, ann in anns:
        img = coco.imgs[ann['image_id']]
        assert ann['iscrowd'] == 0
        assert ann['category_id'] in range(1, 5)
        assert ann['segmentation'], ann
        for poly in ann['segmentation']:
            assert len(poly) % 2 == 0 and len(poly) >= 6, poly
            xs, ys = poly[0::2], poly[1::2]
            assert 0 <= min(xs) and max(xs) < img['width']
            assert 0 <= min(ys) and max(ys) < img['height']
        x, y, w, h = ann['bbox']
        assert w > 0 and h > 0
        assert x >= 0 and y >= 0
        assert x + w <= img['width'] and y + h <= img['height']
        assert MIN_VISIBLE_AREA <= ann['area'] <= w * h
        # The polygons rasterise to (nearly) the annotated box.
        mask = coco.annToMask(ann).astype(bool)
        assert mask.any()
        mys, mxs = np.nonzero(mask)
        assert abs(mxs.min() - x) <= 2 and abs(mys.min() - y) <= 2
        assert abs(mxs.max() - (x + w - 1)) <= 2
        assert abs(mys.max() - (y + h - 1)) <= 2


def test_masks_match_the_rendered_visible_parts(toy):
    """annToMask agrees with the visible mask of the object drawn there."""
    _, _, cocos = toy
    ious = []
    for split_index, split in enumerate(SPLITS):
        coco = cocos[split]
        empty = empty_image_indices(0, split_index, len(coco.imgs))
        for img in coco.imgs.values():
            index = img['id'] - 1
            rng = sample_rng(0, split_index, index)
            size = image_size(rng, DEFAULT_SIZE)
            assert size == (img['width'], img['height'])
            _, objects = render_sample(rng, *size,
                                       with_objects=index not in empty)
            # Visible parts never overlap: later objects hide earlier ones.
            for (_, a), (_, b) in itertools.combinations(objects, 2):
                assert not np.logical_and(a, b).any()
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=img['id'])):
                mask = coco.annToMask(ann).astype(bool)
                best_iou, best_visible = max(
                    (np.logical_and(mask, v).sum() /
                     np.logical_or(mask, v).sum(), v.sum())
                    for cat, v in objects if cat == ann['category_id'])
                # Thin parts are dropped, never added: area <= visible.
                assert ann['area'] <= best_visible
                ious.append(best_iou)
    # Polygons through pixel centres lose about half a pixel all round,
    # which matters for small objects; a few have filled holes.
    assert min(ious) > 0.3
    assert np.median(ious) > 0.8


def test_dataset_has_empty_images_borders_overlaps_and_all_classes(toy):
    _, _, cocos = toy
    empty = [i for c in cocos.values() for i in c.getImgIds()
             if not c.getAnnIds(imgIds=i)]
    assert empty, 'expected at least one image without objects'

    touching = 0
    for _, coco, ann in _all_anns(cocos):
        img = coco.imgs[ann['image_id']]
        x, y, w, h = ann['bbox']
        touching += (x == 0 or y == 0 or x + w == img['width']
                     or y + h == img['height'])
    assert touching > 0, 'expected objects cut by the image border'

    overlapping = 0
    for coco in cocos.values():
        for img_id in coco.getImgIds():
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
            overlapping += sum(_bbox_iou(a['bbox'], b['bbox']) > 0
                               for a, b in itertools.combinations(anns, 2))
    assert overlapping > 0, 'expected overlapping objects'

    seen = {a['category_id'] for _, _, a in _all_anns(cocos)}
    assert seen == {1, 2, 3, 4}


# --------------------------------------------------------------------------
# Determinism and masks to polygons
# --------------------------------------------------------------------------
def _snapshot(out):
    """Bytes of every file the tool wrote, by relative path."""
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob('*')) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(toy, tmp_path):
    out, _, _ = toy
    again = tmp_path / 'again'
    make_toy_coco(again, NUM_TRAIN, NUM_VAL, seed=0)
    assert _snapshot(again) == _snapshot(out)

    other = tmp_path / 'other'
    make_toy_coco(other, NUM_TRAIN, NUM_VAL, seed=1)
    for split in SPLITS:
        name = f'annotations/instances_{split}.json'
        assert _snapshot(other)[name] != _snapshot(out)[name]


def test_mask_to_polygons_simple_cases():
    square = np.zeros((10, 12), bool)
    square[2:6, 3:9] = True
    polygons, kept = mask_to_polygons(square)
    assert len(polygons) == 1
    assert sorted(polygons[0]) == [(3, 2), (3, 5), (8, 2), (8, 5)]
    assert (kept == square).all()

    line = np.zeros((5, 5), bool)
    line[2, :] = True  # one pixel thick: no polygon, nothing kept
    polygons, kept = mask_to_polygons(line)
    assert polygons == [] and not kept.any()

    # A hole is not represented by the polygon but not counted as kept.
    ring = np.zeros((9, 9), bool)
    ring[1:8, 1:8] = True
    ring[3:6, 3:6] = False
    polygons, kept = mask_to_polygons(ring)
    assert len(polygons) == 1 and (kept == ring).all()


def test_mask_to_polygons_random_masks():
    """On masks with many components, nested parts and edges: vertices are
    mask pixels, polygons are ordered by their top-left point, and the kept
    part is inside the mask and covers every polygon's vertices."""
    rng = np.random.default_rng(123)
    masks = [rng.random(rng.integers(1, 25, size=2)) < d
             for d in (0.3, 0.5, 0.7) for _ in range(10)]
    masks += [np.ones((6, 9), bool), np.zeros((4, 4), bool)]
    for mask in masks:
        polygons, kept = mask_to_polygons(mask)
        assert not (kept & ~mask).any()
        assert (kept.sum() == 0) == (polygons == [])
        for poly in polygons:
            assert len(poly) >= 3
            assert all(mask[y, x] and kept[y, x] for x, y in poly)
        tops = [min((y, x) for x, y in poly) for poly in polygons]
        assert tops == sorted(tops)


def test_open_3x3_drops_slivers_keeps_border_objects():
    mask = np.zeros((12, 12), bool)
    mask[0:5, 0:5] = True  # a block cut by the top-left border
    mask[8, 2:10] = True  # a one-pixel sliver
    opened = open_3x3(mask)
    assert opened[0:5, 0:5].all()
    assert not opened[8].any()


# --------------------------------------------------------------------------
# Files kept, bad input
# --------------------------------------------------------------------------
def test_existing_foreign_files_are_kept(tmp_path):
    foreign = [tmp_path / 'README.txt', tmp_path / 'train2017' / 'x.jpg',
               tmp_path / 'annotations' / 'instances_test2017.json']
    for path in foreign:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('keep me')
    make_toy_coco(tmp_path, 2, 1, seed=0)
    assert all(p.read_text() == 'keep me' for p in foreign)
    # No temporary files are left behind either.
    assert sorted(os.listdir(tmp_path / 'annotations')) == [
        'instances_test2017.json', 'instances_train2017.json',
        'instances_val2017.json']


@pytest.mark.parametrize('kwargs', [{'num_train': 0}, {'num_val': -1},
                                    {'seed': -1}, {'size': (10, 300)}])
def test_function_rejects_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        make_toy_coco(tmp_path / 'out', **kwargs)
    assert not (tmp_path / 'out').exists()


@pytest.mark.slow
def test_cli_writes_and_summarises(tmp_path):
    out = tmp_path / 'cli'
    result = _run_cli(out, '--train', 2, '--val', 1, '--seed', 3)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert 'train2017 2 images' in last and 'val2017 1 images' in last
    assert str(out) in last
    assert (out / 'annotations' / 'instances_val2017.json').is_file()


@pytest.mark.parametrize('flag', ['--train', '--val'])
@pytest.mark.parametrize('value', ['0', '-2'])
def test_cli_rejects_non_positive_counts(tmp_path, capsys, flag, value):
    result = cli(capsys, tmp_path / 'out', flag, value)
    assert result.returncode != 0
    assert flag in result.stderr
    assert not (tmp_path / 'out').exists()


def test_cli_unwritable_out_dir(tmp_path, capsys):
    # A path under a regular file cannot be created, even by root.
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a directory')
    for out in (blocker / 'out', blocker):
        result = cli(capsys, out, '--train', 1, '--val', 1)
        assert result.returncode != 0
        assert str(out) in result.stderr
    assert blocker.read_text() == 'not a directory'
