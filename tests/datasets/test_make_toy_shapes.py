"""Tests for the toy shapes classification set: mmpartial.datasets.toy
(make_toy_shapes, render_single_shape) and tools/make_toy_shapes.py."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mmengine.registry import DATASETS, init_default_scope
from PIL import Image

from tool_main import run_main
from mmpartial.datasets.toy import (CATEGORIES, CLASSES, MAX_SIZE, MIN_SIZE,
                                    OutputDirError, make_toy_shapes,
                                    render_single_shape, shape_class_names)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path('tools') / 'make_toy_shapes.py'  # run from the repo root
N_TRAIN, N_VAL, SIZE = 3, 2, 48


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    out = tmp_path_factory.mktemp('toy') / 'shapes'
    summary = make_toy_shapes(out, N_TRAIN, N_VAL, SIZE, seed=0,
                              verbose=False)
    return out, summary


def _read_ann(path):
    rows = []
    for line in Path(path).read_text().splitlines():
        rel, label = line.split(' ')
        rows.append((rel, int(label)))
    return rows


def _tree_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob('*')) if p.is_file()}


def cli(capsys, *args):
    """The tool's ``main`` in this process (the bad-input tests)."""
    return run_main('make_toy_shapes.py', capsys, *args)


def _run_cli(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)],
                          cwd=REPO, capture_output=True, text=True,
                          timeout=120)


# ---------------------------------------------------------------- layout ---


def test_classes_are_the_coco_categories(toy):
    root, summary = toy
    coco_names = [c['name'] for c in CATEGORIES]
    classes = (root / 'meta' / 'classes.txt').read_text().splitlines()
    # Label order == sorted folder names, as in mmpretrain's folder scan.
    assert classes == sorted(coco_names) == shape_class_names()
    assert set(classes) == set(CLASSES)
    assert summary['classes'] == classes
    assert summary['num_classes'] == len(CLASSES)
    for split in ('train', 'val'):
        assert sorted(p.name for p in (root / split).iterdir()) == classes


def test_layout_and_annotations(toy):
    root, summary = toy
    classes = summary['classes']
    assert sorted(p.name for p in root.iterdir()) == ['meta', 'train', 'val']
    assert sorted(p.name for p in (root / 'meta').iterdir()) == [
        'classes.txt', 'train.txt', 'val.txt']
    assert Path(summary['classes_file']) == root / 'meta' / 'classes.txt'
    assert summary['size'] == SIZE and summary['seed'] == 0
    for split, n in (('train', N_TRAIN), ('val', N_VAL)):
        rows = _read_ann(root / 'meta' / f'{split}.txt')
        assert len(rows) == len(classes) * n == summary[split]['count']
        assert summary[split]['files'] == [rel for rel, _ in rows]
        assert summary[split]['per_class'] == n
        assert Path(summary[split]['dir']) == root / split
        listed = set()
        for rel, label in rows:
            cls, fname = rel.split('/')
            assert classes[label] == cls
            assert fname.startswith(f'{cls}_') and fname.endswith('.JPEG')
            listed.add(rel)
        on_disk = set()
        for cls in classes:
            files = sorted((root / split / cls).iterdir())
            assert len(files) == n
            for f in files:
                on_disk.add(f'{cls}/{f.name}')
                with Image.open(f) as im:
                    assert im.format == 'JPEG' and im.mode == 'RGB'
                    assert im.size == (SIZE, SIZE)
        assert on_disk == listed


def test_read_by_checked_custom_dataset(toy):
    """The configs' folder dataset reads the set by a folder scan."""
    pytest.importorskip('mmpretrain')
    root, summary = toy
    init_default_scope('mmpretrain')
    dataset = DATASETS.build(dict(
        type='mmpartial.CheckedCustomDataset', data_root=str(root),
        data_prefix='train', pipeline=[]))
    assert len(dataset) == len(CLASSES) * N_TRAIN
    assert list(dataset.CLASSES) == summary['classes']


# ---------------------------------------------------------- the renderer ---


def test_one_centred_shape_of_varied_size():
    rng = np.random.default_rng(0)
    side = 64
    extents = []
    for category in CLASSES * 5:
        rgb, mask = render_single_shape(rng, category, side)
        assert rgb.shape == (side, side, 3) and rgb.dtype == np.uint8
        ys, xs = np.nonzero(mask)
        assert ys.size > 0
        # Entirely inside: the border rows and columns stay background.
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any()
                    or mask[:, -1].any())
        # Roughly centred.
        box_centre = ((xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2)
        assert all(abs(c - side / 2) < 0.2 * side for c in box_centre)
        extents.append(max(xs.max() - xs.min(), ys.max() - ys.min()) + 1)
        # The shape stands out from the background around it.
        inside = rgb[mask].astype(float).mean(0)
        outside = rgb[~mask].astype(float).mean(0)
        assert np.linalg.norm(inside - outside) > 20
    assert max(extents) > 1.5 * min(extents)


def test_renderer_refuses_unknown_category():
    with pytest.raises(ValueError, match='hexagon'):
        render_single_shape(np.random.default_rng(0), 'hexagon', 64)


# ------------------------------------------------------------ determinism ---


def test_deterministic_for_seed(tmp_path):
    kw = dict(num_train_per_class=2, num_val_per_class=1, size=40,
              verbose=False)
    make_toy_shapes(tmp_path / 'a', seed=7, **kw)
    make_toy_shapes(tmp_path / 'b', seed=7, **kw)
    make_toy_shapes(tmp_path / 'c', seed=8, **kw)
    a, b, c = (_tree_bytes(tmp_path / d) for d in 'abc')
    assert a == b
    assert a.keys() == c.keys()
    images = [k for k in a if k.endswith('.JPEG')]
    assert images and all(a[k] != c[k] for k in images)
    # Train and val images are not copies of each other.
    assert a['train/star/star_00000.JPEG'] != a['val/star/star_00000.JPEG']


def test_images_do_not_depend_on_counts(tmp_path):
    make_toy_shapes(tmp_path / 'small', 1, 1, 32, seed=0, verbose=False)
    make_toy_shapes(tmp_path / 'large', 3, 2, 32, seed=0, verbose=False)
    small = _tree_bytes(tmp_path / 'small')
    large = _tree_bytes(tmp_path / 'large')
    for key, data in small.items():
        if key.endswith('.JPEG'):
            assert large[key] == data


# ------------------------------------------------------------ bad input ---


@pytest.mark.parametrize('kwargs, name', [
    (dict(num_train_per_class=0), 'num_train_per_class'),
    (dict(num_val_per_class=0), 'num_val_per_class'),
    (dict(num_train_per_class=2.5), 'num_train_per_class'),
    (dict(size=MIN_SIZE - 1), 'size'),
    (dict(size=MAX_SIZE + 1), 'size'),
    (dict(seed=-1), 'seed'),
])
def test_api_rejects_bad_arguments(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_toy_shapes(tmp_path / 'x', verbose=False, **kwargs)
    assert not (tmp_path / 'x').exists()


def test_api_unwritable_out_dir(tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    for out in (blocker, blocker / 'shapes'):
        with pytest.raises(OutputDirError) as info:
            make_toy_shapes(out, 1, 1, 32, verbose=False)
        assert str(out) in str(info.value)
    assert blocker.read_text() == 'not a folder'


@pytest.mark.parametrize('args, flag', [
    (['--train', '0'], '--train'),
    (['--val', '0'], '--val'),
    (['--train', 'many'], '--train'),
    (['--size', '16'], '--size'),
    (['--seed', '-1'], '--seed'),
])
def test_cli_rejects_bad_arguments(tmp_path, capsys, args, flag):
    out = tmp_path / 'out'
    res = cli(capsys, out, *args)
    assert res.returncode != 0
    assert flag in res.stderr
    assert not out.exists()


def test_cli_unwritable_out_dir(tmp_path, capsys):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    for out in (blocker / 'shapes', blocker):
        res = cli(capsys, out, '--train', '1', '--val', '1')
        assert res.returncode != 0
        assert str(out) in res.stderr
    assert blocker.read_text() == 'not a folder'


@pytest.mark.slow
def test_cli_run(tmp_path):
    out = tmp_path / 'shapes'
    res = _run_cli(out, '--train', '2', '--val', '1', '--size', '32',
                   '--seed', '3')
    assert res.returncode == 0, res.stderr
    assert 'Done' in res.stdout
    assert len(_read_ann(out / 'meta' / 'train.txt')) == len(CLASSES) * 2
    assert len(_read_ann(out / 'meta' / 'val.txt')) == len(CLASSES) * 1
    with Image.open(out / 'val' / 'circle' / 'circle_00000.JPEG') as im:
        assert im.size == (32, 32)
