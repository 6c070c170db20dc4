"""ImageNet-style training on the toy set, the resolution switch, inference,
and the hand-off of a classification checkpoint to a detection config."""
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from conftest import REPO
from mmpartial.apis.inference import Classifier
from mmpartial.datasets.toy import make_toy_imagenet


def toy_cls_cfg(data_root, work_dir, max_epochs, **extra):
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'partialnet-t0_toy-imagenet.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        cfg[loader].dataset.data_root = str(data_root)
    cfg.train_cfg.max_epochs = max_epochs
    cfg.train_cfg.val_interval = max_epochs
    cfg.param_scheduler[1].end = max_epochs
    cfg.custom_hooks = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=max_epochs)
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(work_dir)
    cfg.merge_from_dict(extra)
    return cfg


@pytest.fixture(scope='module')
def toy_imagenet(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_imagenet')
    make_toy_imagenet(str(root), num_classes=4, train_per_class=64,
                      val_per_class=16, size=64, seed=0, verbose=False)
    return root


@pytest.fixture(scope='module')
def trained(toy_imagenet, tmp_path_factory):
    """Train T0 for a few epochs; return (runner, accuracy before, after)."""
    work = tmp_path_factory.mktemp('cls_work')
    runner = Runner.from_cfg(toy_cls_cfg(toy_imagenet, work, max_epochs=16))
    before = runner.val_loop.run()['accuracy/top1']  # untrained weights
    runner.train()
    after = runner.val_loop.run()['accuracy/top1']
    return runner, before, after


@pytest.mark.slow
def test_short_training_learns_far_above_chance(trained):
    _, before, after = trained
    # 4 classes: chance is 25%; 128 iterations from scratch.
    assert after >= 50, (before, after)
    assert after >= before + 20, (before, after)


@pytest.mark.slow
def test_checkpoint_metadata_names_the_classes(trained):
    runner, _, _ = trained
    ckpt = torch.load(osp.join(runner.work_dir, 'epoch_16.pth'),
                      weights_only=True)
    assert list(ckpt['meta']['dataset_meta']['classes']) == \
        ['blobs', 'checker', 'rings', 'stripes']


@pytest.mark.slow
def test_infer_prints_top_classes(trained, toy_imagenet):
    runner, _, _ = trained
    image = sorted((toy_imagenet / 'val' / 'rings').glob('*.JPEG'))[0]
    done = subprocess.run(
        [sys.executable, 'tools/infer.py', str(image),
         'configs/partialnet-t0_toy-imagenet.py',
         osp.join(runner.work_dir, 'epoch_16.pth')],
        cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines()
             if re.match(r'\s+\d+\. ', line)]
    assert len(lines) == 4  # top-5 of 4 classes
    names = [line.split()[1] for line in lines]
    assert sorted(names) == ['blobs', 'checker', 'rings', 'stripes']
    scores = [float(line.split()[-1]) for line in lines]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1, abs=1e-3)
    # The same from Python.
    classifier = Classifier(
        osp.join(REPO, 'configs', 'partialnet-t0_toy-imagenet.py'),
        osp.join(runner.work_dir, 'epoch_16.pth'))
    top = classifier.top_classes(str(image), topk=2)
    assert [name for name, _ in top] == names[:2]
    assert [score for _, score in top] == pytest.approx(scores[:2],
                                                        abs=1e-4)


@pytest.mark.slow
def test_handoff_to_every_detection_config_shape(trained, tmp_path):
    """The toy checkpoint loads into the T0 detector through init_cfg with
    every backbone tensor arriving (only detection's output norms are new)."""
    runner, _, _ = trained
    ckpt_path = osp.join(runner.work_dir, 'epoch_16.pth')
    ckpt = torch.load(ckpt_path, weights_only=True)['state_dict']
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'mask-rcnn_partialnet-t0_coco.py'))
    cfg.model.backbone.init_cfg.checkpoint = ckpt_path
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    state = detector.backbone.state_dict()
    source = {k[len('backbone.'):]: v for k, v in ckpt.items()
              if k.startswith('backbone.')}
    missing = sorted(set(state) - set(source))
    assert all(k.startswith('norm') for k in missing), missing
    assert len(missing) == 4 * 5  # norm0..3: weight, bias, stats, count
    for key, value in source.items():
        assert torch.equal(state[key], value), key


@pytest.mark.slow
def test_resolution_hook_really_switches(toy_imagenet, tmp_path):
    sizes = {}

    class Record(Hook):

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            sizes.setdefault(runner.epoch, set()).add(
                tuple(data_batch['inputs'][0].shape[-2:]))

    cfg = toy_cls_cfg(toy_imagenet, tmp_path, max_epochs=3)
    cfg.custom_hooks = [
        dict(type='mmpartial.TrainResolutionHook', switch_epoch=2, size=48)
    ]
    cfg.train_dataloader.num_workers = 1
    cfg.train_dataloader.persistent_workers = True  # workers must re-fork
    cfg.train_cfg.val_interval = 100
    runner = Runner.from_cfg(cfg)
    runner.register_hook(Record())
    runner.train()
    assert sizes[0] == sizes[1] == {(56, 56)}
    assert sizes[2] == {(48, 48)}


def test_empty_class_folder_is_named(toy_imagenet, tmp_path):
    import shutil
    root = tmp_path / 'broken'
    shutil.copytree(toy_imagenet / 'train', root / 'train')
    (root / 'train' / 'zebra').mkdir()
    cfg = toy_cls_cfg(root, tmp_path / 'w', max_epochs=1)
    init_default_scope('mmpretrain')
    from mmpretrain.registry import DATASETS
    with pytest.raises(Exception, match='zebra'):
        DATASETS.build(cfg.train_dataloader.dataset)
