"""The guard rails live in mmengine's mechanisms (CheckedRunner,
CheckpointCheckHook, PartialNet.init_weights), so mmdet's own tools, DDP
and remote checkpoints get them too."""
import functools
import http.server
import os
import os.path as osp
import subprocess
import sys
import threading

import mmdet
import pytest
import torch

from conftest import REPO
from mmpartial.engine import CheckpointCheckHook
from mmpartial.models import PartialNet
from mmpartial.utils.checkpoint import CheckpointError
from toy_detection import make_toy_set, toy_detection_cfg

MMDET_TRAIN = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools',
                       'train.py')


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    return make_toy_set(tmp_path_factory.mktemp('toy_coco'), num_train=4,
                        num_val=2)


@pytest.fixture(scope='module')
def t2_checkpoint(tmp_path_factory):
    """A classifier-style checkpoint of PartialNet-T2: it does not fit the
    T0 detectors of the toy config."""
    path = tmp_path_factory.mktemp('ckpt') / 'partialnet-t2.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               PartialNet('t2').state_dict().items()}},
               path)
    return str(path)


def dump_config(cfg, tmp_path, name='toy.py'):
    path = tmp_path / name
    cfg.dump(str(path))
    return str(path)


@pytest.mark.slow
def test_mmdet_own_train_tool_refuses_another_variant(toy_root, tmp_path,
                                                      t2_checkpoint):
    assert osp.isfile(MMDET_TRAIN)
    cfg = toy_detection_cfg(toy_root, tmp_path / 'work', max_epochs=1,
                            load_from=t2_checkpoint)
    done = subprocess.run(
        [sys.executable, MMDET_TRAIN, dump_config(cfg, tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert 'CheckpointError' in done.stderr
    assert "'" + t2_checkpoint + "' does not fit the model" in done.stderr
    assert 'another PartialNet variant' in done.stderr
    assert not (tmp_path / 'work' / 'epoch_1.pth').exists()


@pytest.mark.slow
def test_plain_runner_refuses_a_detector_of_another_variant(toy_root,
                                                            tmp_path):
    """The README's two-line snippet only: mmengine's own Runner, no
    CheckedRunner or CheckpointCheckHook. A T2 detector's checkpoint as
    ``load_from`` of the T0 config is refused by the backbone itself."""
    cfg = toy_detection_cfg(toy_root, tmp_path / 'work', max_epochs=1)
    cfg.pop('runner_type')
    cfg.custom_hooks = [hook for hook in cfg.get('custom_hooks', [])
                        if 'CheckpointCheck' not in hook['type']]
    t2 = toy_detection_cfg(toy_root, tmp_path / 'work_t2', max_epochs=1)
    t2.model.backbone.arch = 't2'
    t2.model.neck.in_channels = [64, 128, 256, 512]
    from mmengine.registry import init_default_scope
    from mmpartial.registry import MODELS
    init_default_scope('mmdet')
    detector = MODELS.build(t2.model)
    checkpoint = tmp_path / 'mask-rcnn_t2.pth'
    torch.save({'state_dict': detector.state_dict()}, checkpoint)
    cfg.load_from = str(checkpoint)
    done = subprocess.run(
        [sys.executable, MMDET_TRAIN, dump_config(cfg, tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert 'CheckpointError' in done.stderr
    assert 'does not fit this PartialNet-T0 backbone' in done.stderr
    assert 'checkpoint of PartialNet-T2' in done.stderr
    assert "backbone.downsample_layers.0.conv.weight: checkpoint " \
        "(64, 3, 4, 4), model (32, 3, 4, 4)" in done.stderr
    assert not (tmp_path / 'work' / 'epoch_1.pth').exists()


@pytest.mark.slow
def test_ddp_two_cpu_processes_refuse_a_checkpoint_that_does_not_fit(
        toy_root, tmp_path, t2_checkpoint):
    cfg = toy_detection_cfg(toy_root, tmp_path / 'ddp', max_epochs=1,
                            load_from=t2_checkpoint)
    env = dict(os.environ, PYTHON=sys.executable, PORT='29533',
               OMP_NUM_THREADS='1')
    done = subprocess.run(
        ['bash', 'tools/dist_train.sh', dump_config(cfg, tmp_path), '2'],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode != 0
    # Both ranks compared against the unwrapped model: under DDP every
    # parameter is named module.*, and nothing would have matched.
    assert log.count('does not fit the model') >= 2, log[-3000:]
    assert 'partialnet-t2.pth' in log and 'differ in shape' in log


def test_hook_compares_against_the_unwrapped_model(t2_checkpoint):
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel

    class FakeRunner:
        _load_from = t2_checkpoint
        work_dir = '.'

    good = {'state_dict': PartialNet('t2').state_dict()}
    dist.init_process_group('gloo', init_method='tcp://127.0.0.1:29541',
                            rank=0, world_size=1)
    try:
        runner = FakeRunner()
        for arch in ('t2', 't0'):
            runner.model = MMDistributedDataParallel(
                module=PartialNet(arch), device_ids=None)
            assert next(iter(runner.model.state_dict())).startswith(
                'module.')
            if arch == 't2':
                CheckpointCheckHook().after_load_checkpoint(runner, good)
            else:
                with pytest.raises(CheckpointError,
                                   match='partialnet-t2.pth.*differ'):
                    CheckpointCheckHook().after_load_checkpoint(
                        runner, good)
    finally:
        dist.destroy_process_group()


def test_ignore_keys_allows_a_replaced_layer(t2_checkpoint):

    class FakeRunner:
        _load_from = t2_checkpoint
        work_dir = '.'

    runner = FakeRunner()
    runner.model = PartialNet('t2')
    state = runner.model.state_dict()
    state['stages.0.0.mlp.fc1.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError, match='differ in shape'):
        CheckpointCheckHook().after_load_checkpoint(runner, state)
    CheckpointCheckHook(ignore_keys=[r'mlp\.fc1']).after_load_checkpoint(
        runner, state)


def test_http_checkpoint_loads_through_init_cfg(tmp_path, monkeypatch):
    served = tmp_path / 'served'
    served.mkdir()
    source = PartialNet('t0')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               source.state_dict().items()}},
               served / 'partialnet-t0-http.pth')
    # torch.hub caches downloads under TORCH_HOME: keep it in tmp.
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(served))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = (f'http://127.0.0.1:{server.server_address[1]}/'
               'partialnet-t0-http.pth')
        backbone = PartialNet('t0', init_cfg=dict(
            type='Pretrained', checkpoint=url, prefix='backbone.'))
        backbone.init_weights()
    finally:
        server.shutdown()
        server.server_close()
    for key, value in source.state_dict().items():
        assert torch.equal(backbone.state_dict()[key], value), key


@pytest.mark.slow
def test_resume_skips_incomplete_newest_checkpoint(toy_root, tmp_path):
    from mmengine.registry import RUNNERS
    work = tmp_path / 'work'
    cfg = toy_detection_cfg(toy_root, work, max_epochs=1)
    RUNNERS.build(cfg).train()
    (work / 'epoch_2.pth').write_bytes(b'PK\x03\x04 cut short')
    with open(work / 'last_checkpoint', 'w') as f:
        f.write(str(work / 'epoch_2.pth'))
    cfg = toy_detection_cfg(toy_root, work, max_epochs=2, resume=True)
    runner = RUNNERS.build(cfg)
    runner.train()
    assert runner._load_from == str(work / 'epoch_1.pth')
    assert runner.epoch == 2
