"""Tests for the toy ImageNet: mmpartial.datasets.toy and its command line
tools/make_toy_imagenet.py."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tool_main import run_main
from mmpartial.datasets.toy import (MAX_CLASSES, MAX_SIZE, MIN_SIZE,
                                    make_toy_imagenet)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path('tools') / 'make_toy_imagenet.py'  # run from the repo root

K, N_TRAIN, N_VAL, SIZE = 4, 60, 30, 64


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    out = tmp_path_factory.mktemp('toy') / 'data'
    summary = make_toy_imagenet(
        out,
        num_classes=K,
        train_per_class=N_TRAIN,
        val_per_class=N_VAL,
        size=SIZE,
        seed=0,
        verbose=False)
    return out, summary


def _read_ann(path):
    rows = []
    for line in Path(path).read_text().splitlines():
        rel, label = line.split(' ')
        rows.append((rel, int(label)))
    return rows


def _load_split(root, split):
    rows = _read_ann(root / 'meta' / f'{split}.txt')
    imgs = np.stack([
        np.asarray(Image.open(root / split / rel).convert('RGB'))
        for rel, _ in rows
    ]).astype(np.float64) / 255.0
    return imgs, np.array([label for _, label in rows])


def _tree_bytes(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob('*')) if p.is_file()
    }


# ---------------------------------------------------------------- layout ---


def test_layout_and_annotations(toy):
    root, summary = toy
    classes = (root / 'meta' / 'classes.txt').read_text().splitlines()
    assert len(classes) == K
    # Label order == sorted folder names, as in mmpretrain's folder scan.
    assert classes == sorted(classes)
    assert summary['classes'] == classes
    assert sorted(p.name for p in root.iterdir()) == ['meta', 'train', 'val']
    assert sorted(p.name for p in (root / 'meta').iterdir()) == [
        'classes.txt', 'train.txt', 'val.txt'
    ]

    for split, n in (('train', N_TRAIN), ('val', N_VAL)):
        assert sorted(p.name for p in (root / split).iterdir()) == classes
        rows = _read_ann(root / 'meta' / f'{split}.txt')
        assert len(rows) == K * n
        assert summary[split]['count'] == K * n
        assert summary[split]['per_class'] == n
        assert summary[split]['files'] == [rel for rel, _ in rows]
        assert {label for _, label in rows} == set(range(K))
        listed = set()
        for rel, label in rows:
            cls, fname = rel.split('/')
            assert classes[label] == cls
            assert fname.startswith(f'{cls}_') and fname.endswith('.JPEG')
            listed.add(rel)
        assert len(listed) == len(rows)  # no duplicates
        on_disk = set()
        for label, cls in enumerate(classes):
            files = sorted((root / split / cls).iterdir())
            assert len(files) == n
            assert files[0].name == f'{cls}_00000.JPEG'
            for f in files:
                on_disk.add(f'{cls}/{f.name}')
                with Image.open(f) as im:
                    assert im.format == 'JPEG'
                    assert im.mode == 'RGB'
                    assert im.size == (SIZE, SIZE)
        assert on_disk == listed


def test_summary_paths(toy):
    root, summary = toy
    assert summary['num_classes'] == K
    assert summary['size'] == SIZE and summary['seed'] == 0
    assert Path(summary['out_dir']) == root
    assert Path(summary['classes_file']) == root / 'meta' / 'classes.txt'
    for split in ('train', 'val'):
        assert Path(summary[split]['dir']) == root / split
        assert Path(summary[split]['ann_file']) == root / 'meta' / (
            split + '.txt')


def test_all_families_and_size_limits(tmp_path):
    n = MAX_CLASSES
    assert n >= 8
    for size in (MIN_SIZE, MAX_SIZE):
        out = tmp_path / str(size)
        s = make_toy_imagenet(
            out, num_classes=n, train_per_class=1, val_per_class=1,
            size=size, verbose=False)
        assert len(s['classes']) == n == len(set(s['classes']))
        for rel in s['train']['files']:
            with Image.open(out / 'train' / rel) as im:
                assert im.size == (size, size)


# ------------------------------------------------------------ determinism ---


def test_deterministic_for_seed(tmp_path):
    kw = dict(num_classes=3, train_per_class=4, val_per_class=2, size=40,
              verbose=False)
    make_toy_imagenet(tmp_path / 'a', seed=7, **kw)
    make_toy_imagenet(tmp_path / 'b', seed=7, **kw)
    make_toy_imagenet(tmp_path / 'c', seed=8, **kw)
    a, b, c = (_tree_bytes(tmp_path / d) for d in 'abc')
    assert a == b
    assert a.keys() == c.keys()
    images = [k for k in a if k.endswith('.JPEG')]
    assert all(a[k] != c[k] for k in images)
    # Train and val images are not copies of each other.
    assert a['train/stripes/stripes_00000.JPEG'] != \
        a['val/stripes/stripes_00000.JPEG']


def test_class_images_do_not_depend_on_num_classes(tmp_path):
    kw = dict(train_per_class=2, val_per_class=1, size=32, verbose=False)
    make_toy_imagenet(tmp_path / 'k2', num_classes=2, **kw)
    make_toy_imagenet(tmp_path / 'k5', num_classes=5, **kw)
    k2, k5 = _tree_bytes(tmp_path / 'k2'), _tree_bytes(tmp_path / 'k5')
    for key, data in k2.items():
        if key.endswith('.JPEG'):
            assert k5[key] == data


# ------------------------------------------------------------ learnability ---


def _nearest_centroid_accuracy(f_train, y_train, f_val, y_val):
    mu, sd = f_train.mean(0), f_train.std(0) + 1e-8
    f_train, f_val = (f_train - mu) / sd, (f_val - mu) / sd
    labels = np.unique(y_train)
    centroids = np.stack([f_train[y_train == c].mean(0) for c in labels])
    dist = ((f_val[:, None, :] - centroids[None])**2).sum(-1)
    return float((labels[dist.argmin(1)] == y_val).mean())


def _mean_colour(imgs):
    return imgs.mean(axis=(1, 2))


def _pattern_features(imgs, ori_bins=12, freq_bins=8):
    """Rotation-tolerant texture features, independent of the two colours.

    Each image is projected on its principal colour axis and standardised;
    features are a radial FFT-magnitude histogram and a gradient-orientation
    histogram (doubled angle, circularly shifted so that its peak comes
    first), plus how peaked that orientation histogram is.
    """
    feats = []
    for img in imgs:
        pix = img.reshape(-1, 3)
        pix = pix - pix.mean(0)
        axis = np.linalg.svd(pix, full_matrices=False)[2][0]
        g = (pix @ axis).reshape(img.shape[:2])
        g = (g - g.mean()) / (g.std() + 1e-8)
        h, w = g.shape

        spec = np.abs(np.fft.fftshift(np.fft.fft2(g * np.outer(
            np.hanning(h), np.hanning(w)))))
        fy, fx = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2,
                             indexing='ij')
        radius = np.sqrt(fy**2 + fx**2) / (min(h, w) / 2)
        rhist = np.histogram(radius, bins=freq_bins, range=(0, 1),
                             weights=spec)[0]
        rhist = rhist / (rhist.sum() + 1e-8)

        gy, gx = np.gradient(g)
        mag = np.hypot(gx, gy)
        ang = np.mod(2 * np.arctan2(gy, gx), 2 * np.pi)
        ohist = np.histogram(ang, bins=ori_bins, range=(0, 2 * np.pi),
                             weights=mag)[0]
        ohist = ohist / (ohist.sum() + 1e-8)
        ohist = np.roll(ohist, -int(ohist.argmax()))
        feats.append(np.concatenate([rhist, ohist, [ohist.max()]]))
    return np.array(feats)


def test_not_solvable_by_colour_but_learnable(toy):
    root, _ = toy
    x_train, y_train = _load_split(root, 'train')
    x_val, y_val = _load_split(root, 'val')

    acc_colour = _nearest_centroid_accuracy(
        _mean_colour(x_train), y_train, _mean_colour(x_val), y_val)
    acc_pattern = _nearest_centroid_accuracy(
        _pattern_features(x_train), y_train, _pattern_features(x_val), y_val)
    print(f'nearest-class-mean accuracy: mean colour {acc_colour:.3f}, '
          f'pattern features {acc_pattern:.3f} (chance {1 / K:.3f})')
    assert acc_colour < 0.5
    assert acc_pattern > 0.6


# ------------------------------------------------------------ bad input ---


def cli(capsys, *args):
    """The tool's ``main`` in this process (the bad-input tests)."""
    return run_main('make_toy_imagenet.py', capsys, *args)


def _run_cli(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=120)


@pytest.mark.parametrize('args, flag', [
    (['--classes', '1'], '--classes'),
    (['--classes', '99'], '--classes'),
    (['--train-per-class', '0'], '--train-per-class'),
    (['--val-per-class', '0'], '--val-per-class'),
    (['--size', '16'], '--size'),
    (['--size', '1024'], '--size'),
    (['--seed', '-1'], '--seed'),
])
def test_cli_rejects_bad_arguments(tmp_path, capsys, args, flag):
    out = tmp_path / 'out'
    res = cli(capsys, out, *args)
    assert res.returncode != 0
    assert flag in res.stderr
    assert not out.exists()


def test_cli_classes_error_names_maximum(tmp_path, capsys):
    res = cli(capsys, tmp_path / 'out', '--classes', '1')
    assert res.returncode != 0
    assert '--classes' in res.stderr
    assert str(MAX_CLASSES) in res.stderr


def test_cli_unwritable_out_dir(tmp_path, capsys):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    out = blocker / 'toy'
    res = cli(capsys, out, '--train-per-class', '1', '--val-per-class', '1')
    assert res.returncode != 0
    assert str(out) in res.stderr
    assert blocker.read_text() == 'not a folder'

    # OUT_DIR itself being a regular file.
    res = cli(capsys, blocker)
    assert res.returncode != 0
    assert str(blocker) in res.stderr


@pytest.mark.slow
def test_cli_default_run(tmp_path):
    out = tmp_path / 'toy'
    res = _run_cli(out, '--train-per-class', '3', '--val-per-class', '2',
                   '--size', '32', '--seed', '3')
    assert res.returncode == 0, res.stderr
    assert 'Done' in res.stdout
    assert len(_read_ann(out / 'meta' / 'train.txt')) == 4 * 3
    assert len(_read_ann(out / 'meta' / 'val.txt')) == 4 * 2


def test_api_rejects_bad_arguments(tmp_path):
    bad = [
        dict(num_classes=1), dict(num_classes=MAX_CLASSES + 1),
        dict(train_per_class=0), dict(val_per_class=0), dict(size=31),
        dict(size=513), dict(seed=-1), dict(num_classes=2.5)
    ]
    for kw in bad:
        with pytest.raises(ValueError, match=list(kw)[0]):
            make_toy_imagenet(tmp_path / 'x', verbose=False, **kw)
    assert not (tmp_path / 'x').exists()
    with pytest.raises(ValueError, match='maximum is'):
        make_toy_imagenet(tmp_path / 'x', num_classes=1, verbose=False)


def test_existing_files_are_kept(tmp_path, capsys):
    out = tmp_path / 'toy'
    kw = dict(train_per_class=2, val_per_class=1, size=32)
    make_toy_imagenet(out, num_classes=3, **kw)
    (out / 'README.txt').write_text('mine')
    extra = out / 'train' / 'blobs' / 'blobs_09999.JPEG'
    extra.write_bytes(b'old')
    capsys.readouterr()
    # Fewer classes and the same counts: nothing may be removed.
    make_toy_imagenet(out, num_classes=2, **kw)
    assert (out / 'README.txt').read_text() == 'mine'
    assert extra.read_bytes() == b'old'
    assert (out / 'train' / 'blobs' / 'blobs_00000.JPEG').is_file()
    warning = capsys.readouterr().out
    assert 'WARNING' in warning and 'blobs' in warning
    # The annotation files list only what this run wrote.
    rows = _read_ann(out / 'meta' / 'train.txt')
    assert {rel.split('/')[0] for rel, _ in rows} == {'checker', 'stripes'}
