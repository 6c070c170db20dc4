"""Checkpoint safety, interrupted training, bad configs and numerics."""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config

from conftest import REPO
from mmpartial.apis.config_checks import ConfigError, \
    check_partialnet_config
from mmpartial.datasets.toy import make_toy_imagenet
from mmpartial.engine import enable_amp
from mmpartial.utils.checkpoint import (CheckpointError,
                                        check_checkpoint_file,
                                        find_latest_complete_checkpoint)
from toy_detection import make_toy_set, toy_detection_cfg


class _RunsACommand:
    """Unpickling this would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_mmengine_checkpoint_loads_safely_and_hostile_one_is_refused(
        tmp_path):
    from mmengine.logging import HistoryBuffer, MessageHub
    hub = MessageHub.get_instance('reliability-test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', 0.25)
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict={'w': torch.ones(2)},
                    message_hub=hub.state_dict()), good)
    loaded = torch.load(good, weights_only=True)
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer) and buffer.mean() == 0.375

    marker = tmp_path / 'payload-ran'
    bad = tmp_path / 'hostile.pth'
    torch.save({'state_dict': {}, 'x': _RunsACommand(marker)}, bad)
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(bad, weights_only=True)
    # The same through mmengine, as load_from / resume / init_cfg use it.
    from mmengine.runner import CheckpointLoader
    with pytest.raises(Exception):
        CheckpointLoader.load_checkpoint(str(bad), map_location='cpu')
    assert not marker.exists()


def test_allowed_getattr_only_reaches_history_buffer_methods(tmp_path):
    import pickle

    from mmengine.logging import HistoryBuffer

    class Escape:

        def __reduce__(self):
            return (getattr, (HistoryBuffer, '__init__'))

    path = tmp_path / 'escape.pth'
    torch.save({'x': Escape()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


@pytest.mark.slow
def test_truncated_and_empty_checkpoints_are_named(tmp_path):
    good = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {'w': torch.randn(1000)}}, good)
    check_checkpoint_file(str(good))
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    cut = tmp_path / 'epoch_2.pth'
    cut.write_bytes(good.read_bytes()[:1500])
    with pytest.raises(CheckpointError, match='empty.pth.*is empty'):
        check_checkpoint_file(str(empty))
    with pytest.raises(CheckpointError, match='epoch_2.pth.*truncated'):
        check_checkpoint_file(str(cut))
    # The newest file is the truncated one: --resume picks epoch_1.
    os.utime(good, (time.time() - 60, time.time() - 60))
    assert find_latest_complete_checkpoint(str(tmp_path)) == str(good)
    done = subprocess.run(
        [sys.executable, 'tools/test.py',
         'configs/mask-rcnn_partialnet-t0_toy.py', str(cut)],
        cwd=REPO, capture_output=True, text=True)
    assert done.returncode != 0
    assert 'epoch_2.pth' in done.stderr and 'truncated' in done.stderr
    assert 'Traceback' not in done.stderr


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_loses_no_epoch(tmp_path):
    root = make_toy_set(tmp_path / 'toy')
    work = tmp_path / 'work'
    cfg = toy_detection_cfg(root, work, max_epochs=3)
    config = tmp_path / 'toy.py'
    cfg.dump(str(config))
    run = [sys.executable, 'tools/train.py', str(config), '--work-dir',
           str(work)]
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    log = tmp_path / 'first.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen(run, cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 600
        # Kill once epoch 1 is saved and epoch 2 is under way.
        while 'Epoch(train) [2][1/4]' not in log.read_text():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.time() < deadline, 'training did not reach epoch 2'
            time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (work / 'epoch_1.pth').exists()
    assert not (work / 'epoch_2.pth').exists()
    # A half-written newer file, as a kill during saving leaves behind.
    (work / 'epoch_2.pth').write_bytes(b'PK\x03\x04 partial')
    done = subprocess.run(run + ['--resume'], cwd=REPO, capture_output=True,
                          text=True, env=env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert 'resumed epoch: 1, iter: 4' in out
    for epoch in (2, 3):
        assert f'Epoch(train) [{epoch}][4/4]' in out
    assert 'Epoch(train) [1]' not in out
    check_checkpoint_file(str(work / 'epoch_3.pth'))


@pytest.mark.parametrize('override, key', [
    (dict(model=dict(neck=dict(in_channels=[32, 64, 128, 256]))),
     'model.neck.in_channels'),
    (dict(model=dict(backbone=dict(arch='t22'))), 'model.backbone.arch'),
    (dict(model=dict(backbone=dict(dpconv=dict(budget=0.5)))),
     'model.backbone.dpconv'),
    (dict(model=dict(backbone=dict(dpconv=dict(), n_div=3))),
     'model.backbone.n_div'),
    (dict(model=dict(backbone=dict(out_indices=(0, 5)))),
     'model.backbone.out_indices'),
])
def test_bad_detection_config_names_the_key(override, key):
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'mask-rcnn_partialnet-t2_coco.py'))
    cfg.merge_from_dict(override)
    with pytest.raises(ConfigError, match=key.replace('.', r'\.')):
        check_partialnet_config(cfg)


def test_fpn_mismatch_message_gives_the_expected_value():
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'mask-rcnn_partialnet-s_coco.py'))
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    with pytest.raises(ConfigError, match=r'in_channels=\[96, 192, 384, 768'):
        check_partialnet_config(cfg)
    cls = Config.fromfile(osp.join(REPO, 'configs', 'partialnet-m_in1k.py'))
    cls.model.head.in_channels = 768
    with pytest.raises(ConfigError, match='head.in_channels=1024'):
        check_partialnet_config(cls)


@pytest.mark.slow
def test_shipped_configs_pass_the_checks():
    import glob
    for path in glob.glob(osp.join(REPO, 'configs', '*.py')):
        check_partialnet_config(Config.fromfile(path))


@pytest.mark.slow
def test_detector_forward_on_tiny_and_huge_images():
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'mask-rcnn_partialnet-t0_toy.py'))
    model = MODELS.build(cfg.model).eval()
    for h, w in ((32, 32), (2000, 3000)):
        sample = DetDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), scale_factor=(1., 1.)))
        data = model.data_preprocessor(
            dict(inputs=[torch.randint(0, 255, (3, h, w), dtype=torch.uint8)],
                 data_samples=[sample]), False)
        with torch.no_grad():
            result = model(**data, mode='predict')[0]
        boxes = result.pred_instances.bboxes
        assert torch.isfinite(boxes).all()
        if len(boxes):
            assert boxes[:, 2].max() <= w + 1 and boxes[:, 3].max() <= h + 1


@pytest.mark.slow
def test_amp_training_stays_finite(tmp_path):
    """Two hundred bf16-autocast iterations of T0 on the toy ImageNet."""
    from mmengine.runner import Runner

    make_toy_imagenet(str(tmp_path / 'data'), num_classes=4,
                      train_per_class=16, val_per_class=4, size=32,
                      verbose=False)
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'partialnet-t0_toy-imagenet.py'))
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'data')
    cfg.train_dataloader.dataset.pipeline[1].scale = 32
    cfg.train_dataloader.batch_size = 4
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_cfg = dict(by_epoch=False, max_iters=200, val_interval=10**6)
    cfg.param_scheduler = []
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.custom_hooks = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=10**6)
    cfg.work_dir = str(tmp_path / 'work')
    enable_amp(cfg)
    runner = Runner.from_cfg(cfg)
    losses = []

    class Record(__import__('mmengine.hooks', fromlist=['Hook']).Hook):

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            losses.append(outputs['loss'].item())

    runner.register_hook(Record())
    runner.train()
    assert type(runner.optim_wrapper).__name__ == 'AutocastOptimWrapper'
    assert runner.optim_wrapper.dtype == torch.bfloat16
    assert len(losses) == 200
    assert all(map(lambda v: v == v and abs(v) < 1e4, losses))  # no NaN/inf
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())
    assert sum(losses[-20:]) < sum(losses[:20])  # and it still learns


@pytest.mark.slow
def test_checkpoint_of_another_variant_is_refused(tmp_path):
    from mmpartial.models import PartialNet
    other = tmp_path / 'partialnet-t2.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               PartialNet('t2').state_dict().items()}},
               other)
    # Hand-off through init_cfg into a T0 detector backbone.
    backbone = PartialNet('t0', out_indices=(0, 1, 2, 3), out_norm=True,
                          init_cfg=dict(type='Pretrained',
                                        checkpoint=str(other),
                                        prefix='backbone.'))
    with pytest.raises(CheckpointError, match='partialnet-t2.pth.*another'):
        backbone.init_weights()
    # tools/test.py with a T0 config.
    cfg = toy_detection_cfg(make_toy_set(tmp_path / 'toy', 2, 1),
                            tmp_path / 'work')
    cfg.dump(str(tmp_path / 'toy.py'))
    done = subprocess.run(
        [sys.executable, 'tools/test.py', str(tmp_path / 'toy.py'),
         str(other)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode != 0 and 'partialnet-t2.pth' in done.stderr
    assert 'another PartialNet variant' in done.stderr


def test_coco_config_without_coco_says_where_it_looked(tmp_path):
    from mmengine.registry import DATASETS, init_default_scope
    init_default_scope('mmdet')
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'mask-rcnn_partialnet-t0_coco.py'))
    dataset = cfg.train_dataloader.dataset
    dataset.data_root = str(tmp_path / 'coco') + '/'
    with pytest.raises(FileNotFoundError) as info:
        DATASETS.build(dataset)
    message = str(info.value)
    assert str(tmp_path / 'coco' / 'annotations' /
               'instances_train2017.json') in message
    assert 'train2017/' in message and 'val2017/' in message
    assert 'configs/mask-rcnn_partialnet-t0_toy.py' in message
