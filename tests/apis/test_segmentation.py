"""Semantic segmentation in mmseg: UperNet and Semantic FPN with PartialNet
build and train, the toy ADE20K set trains through tools/train.py and
tools/test.py reports its mIoU, and bad label maps and palettes are errors
that say where they are."""
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from conftest import REPO
from fast_config_parsing import fast_config_parsing  # noqa: F401
from mmpartial.apis import ConfigError, build_model, load_config
from mmpartial.datasets.toy import ADE_CLASSES, make_toy_ade
from mmpartial.models import PartialNet

TOY_CONFIG = osp.join(REPO, 'configs', 'upernet_partialnet-t0_toy-ade.py')
TOY_SIZE = (96, 80)  # (width, height) of the toy images in these tests

pytestmark = pytest.mark.usefixtures('fast_config_parsing')


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_ade')
    make_toy_ade(str(root), num_train=6, num_val=3, seed=1, size=TOY_SIZE)
    return str(root)


def seg_samples(batch, height, width, num_classes):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(batch):
        labels = torch.randint(0, num_classes, (1, height, width))
        labels[:, :8] = 255  # an ignored strip, as padding makes
        sample = SegDataSample(gt_sem_seg=PixelData(data=labels))
        sample.set_metainfo(dict(img_shape=(height, width),
                                 pad_shape=(height, width),
                                 ori_shape=(height, width)))
        samples.append(sample)
    return samples


@pytest.mark.slow
@pytest.mark.parametrize('head', ['upernet', 'fpn'])
@pytest.mark.parametrize('variant', ['t0', 't2'])
def test_ade20k_model_builds_and_runs_a_loss_step(head, variant):
    cfg = load_config(
        osp.join(REPO, 'configs', f'{head}_partialnet-{variant}_ade20k.py'))
    dim = PartialNet.arch_zoo[variant]['embed_dim']
    if head == 'upernet':
        assert cfg.model.decode_head.in_channels == [dim * 2**i
                                                     for i in range(4)]
        assert cfg.model.auxiliary_head.in_channels == 4 * dim
        # The ADE20K head is 512 channels wide: ~25 s per step on a shared
        # CPU core. The wiring under test (in_channels, in_index) is the
        # same at 64.
        cfg.model.decode_head.channels = 64
        cfg.model.auxiliary_head.channels = 32
    else:
        assert cfg.model.neck.in_channels == [dim * 2**i for i in range(4)]
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    model = build_model(cfg)
    model.init_weights()
    assert isinstance(model.backbone, PartialNet)
    model.train()
    losses = model.loss(torch.randn(2, 3, 256, 256),
                        seg_samples(2, 256, 256, 150))
    names = {'decode.loss_ce'} | ({'aux.loss_ce'} if head == 'upernet'
                                  else set())
    assert names <= set(losses)
    total = sum(value for key, value in losses.items() if 'loss' in key)
    assert torch.isfinite(total)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    optimizer.zero_grad()
    total.backward()
    stem = next(model.backbone.parameters())
    assert stem.grad is not None and stem.grad.abs().sum() > 0
    optimizer.step()
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 256, 256), mode='tensor')
    assert logits.shape == (1, 150, 64, 64)  # the decode head's stride 4


def test_upernet_config_check_names_the_head():
    path = osp.join(REPO, 'configs', 'upernet_partialnet-t1_ade20k.py')
    with pytest.raises(ConfigError, match=r'model\.decode_head\.in_channels'
                       r'=\[48, 96, 192, 384\]'):
        load_config(path, {'model.decode_head.in_channels': [64, 128, 256,
                                                             512]})
    with pytest.raises(ConfigError,
                       match=r'model\.auxiliary_head\.in_channels=192'):
        load_config(path, {'model.auxiliary_head.in_channels': 1024})


def toy_cfg(data_root, work_dir, max_iters=3):
    """The toy config on ``data_root``, at the tests' small image size,
    without workers, a few iterations."""
    cfg = Config.fromfile(TOY_CONFIG)
    crop = (64, 64)
    cfg.model.data_preprocessor.size = crop
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        cfg[loader].dataset.data_root = data_root
    for step in cfg.train_dataloader.dataset.pipeline:
        if step.type == 'RandomResize':
            step.scale = TOY_SIZE
        if step.type == 'RandomCrop':
            step.crop_size = crop
    for step in cfg.test_dataloader.dataset.pipeline:
        if step.type == 'Resize':
            step.scale = TOY_SIZE
    cfg.val_dataloader = cfg.test_dataloader
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = 1000
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = max_iters
    cfg.work_dir = str(work_dir)
    return cfg


@pytest.mark.slow
def test_toy_config_trains_then_test_tool_reports_miou(toy_root, tmp_path):
    # Trained here by the runner the config names, then evaluated by
    # tools/test.py, pictures and raw predictions included.
    import mmpartial  # noqa: F401
    from mmengine.registry import RUNNERS
    cfg = toy_cfg(toy_root, tmp_path / 'work')
    assert cfg.runner_type == 'mmpartial.CheckedRunner'
    runner = RUNNERS.build(cfg)
    runner.train()
    assert runner.iter == 3
    checkpoint = tmp_path / 'work' / 'iter_3.pth'
    assert checkpoint.exists()

    config = tmp_path / 'toy_ade.py'
    cfg.dump(str(config))
    done = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'test.py'), str(config),
         str(checkpoint), '--work-dir', str(tmp_path / 'test'),
         '--show-dir', str(tmp_path / 'vis'), '--out',
         str(tmp_path / 'preds.pkl')],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert 'mIoU:' in log and 'aAcc:' in log
    table = log[log.index('per class results'):]
    assert all(name in table for name in ADE_CLASSES)
    pictures = list((tmp_path / 'vis').rglob('*.png'))
    assert len(pictures) == 3  # one per validation image
    assert (tmp_path / 'preds.pkl').stat().st_size > 0


def test_toy_set_layout_and_labels(toy_root):
    for split, prefix, count in (('training', 'ADE_train', 6),
                                 ('validation', 'ADE_val', 3)):
        for index in range(1, count + 1):
            name = f'{prefix}_{index:08d}'
            image = Image.open(osp.join(toy_root, 'images', split,
                                        name + '.jpg'))
            labels = Image.open(osp.join(toy_root, 'annotations', split,
                                         name + '.png'))
            assert labels.mode == 'L' and labels.size == image.size
            assert set(np.unique(np.asarray(labels))) <= set(range(6))
    # The images are the toy COCO scenes: same seed and size, same pixels.
    from mmpartial.datasets.toy import make_toy_coco
    coco = osp.join(osp.dirname(toy_root), 'coco_of_' +
                    osp.basename(toy_root))
    make_toy_coco(coco, num_train=1, num_val=1, seed=1, size=TOY_SIZE)
    assert np.array_equal(
        np.asarray(Image.open(osp.join(coco, 'train2017',
                                       '000000000001.jpg'))),
        np.asarray(Image.open(osp.join(toy_root, 'images', 'training',
                                       'ADE_train_00000001.jpg'))))


def test_make_toy_ade_refuses_bad_arguments(tmp_path):
    from mmpartial.datasets.toy import OutputDirError
    with pytest.raises(ValueError, match='num_val'):
        make_toy_ade(str(tmp_path), num_train=1, num_val=0)
    with pytest.raises(ValueError, match='size'):
        make_toy_ade(str(tmp_path), size=(8, 8))
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    with pytest.raises(OutputDirError, match='not a folder'):
        make_toy_ade(str(blocker))


def toy_dataset(data_root, **overrides):
    """The toy config's training dataset, built through the registry."""
    import mmpartial  # noqa: F401
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(TOY_CONFIG).train_dataloader.dataset
    cfg.data_root = data_root
    cfg.scan_labels = False
    cfg.update(overrides)
    return DATASETS.build(cfg)


@pytest.fixture
def bad_label_root(tmp_path):
    root = str(tmp_path / 'bad')
    make_toy_ade(root, num_train=3, num_val=1, seed=2, size=(64, 64))
    path = osp.join(root, 'annotations', 'training', 'ADE_train_00000002.png')
    labels = np.asarray(Image.open(path)).copy()
    labels[:4, :4] = 255  # the ignore index: fine
    labels[10:12, 10:12] = 9  # class 8 after reduce_zero_label: 5 classes
    Image.fromarray(labels).save(path)
    return root, path


def test_label_beyond_the_classes_is_named_when_loaded(bad_label_root):
    from mmpartial.datasets import SegLabelError
    root, path = bad_label_root
    dataset = toy_dataset(root)
    dataset[0]  # a good map (the ignore index and 0 included) passes
    with pytest.raises(SegLabelError) as err:
        dataset[1]
    message = str(err.value)
    assert path in message and 'label values [8]' in message
    assert 'file values [9]' in message and '5 classes' in message


def test_scan_labels_names_every_bad_file_when_built(bad_label_root):
    from mmpartial.datasets import SegLabelError
    root, path = bad_label_root
    with pytest.raises(SegLabelError, match='1 of 3 label maps') as err:
        toy_dataset(root, scan_labels=True)
    assert path in str(err.value)


def test_missing_label_map_is_named(bad_label_root, tmp_path):
    import os

    from mmpartial.datasets import SegLabelError
    root, path = bad_label_root
    os.remove(path)
    with pytest.raises(SegLabelError, match='1 of 3 images have no label'):
        toy_dataset(root)


def test_palette_that_does_not_fit_the_classes(toy_root):
    from mmpartial.datasets import PaletteError
    metainfo = dict(classes=ADE_CLASSES,
                    palette=[(0, 0, 0), (255, 0, 0), (0, 255, 0)])
    with pytest.raises(PaletteError, match='3 colours but there are 5 '
                       "classes \\('background'"):
        toy_dataset(toy_root, metainfo=metainfo)
    metainfo['palette'] = [(0, 0, 0)] * 4 + [(0, 300, 0)]
    with pytest.raises(PaletteError, match=r'palette entry 4 is \(0, 300'):
        toy_dataset(toy_root, metainfo=metainfo)
    # ADE20K's own classes with a short palette: 150 classes are named.
    from mmpartial.datasets import CheckedADE20KDataset
    with pytest.raises(PaletteError, match='2 colours but there are 150'):
        CheckedADE20KDataset(data_root=toy_root, lazy_init=True,
                             metainfo=dict(palette=[(0, 0, 0)] * 2))
