"""Mask R-CNN with a PartialNet backbone trains, saves, resumes and runs
distributed on the toy COCO set."""
import copy
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from conftest import REPO
from toy_detection import make_toy_set, toy_detection_cfg


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    return make_toy_set(tmp_path_factory.mktemp('toy_coco'))


def lrs_of(runner):
    return [group['lr'] for group in
            runner.optim_wrapper.optimizer.param_groups]


@pytest.mark.slow
def test_train_save_resume_continue(toy_root, tmp_path):
    # A continuous run of 2 epochs (4 iterations each)...
    full = Runner.from_cfg(toy_detection_cfg(toy_root, tmp_path / 'full'))
    full.train()
    assert full.iter == 8 and full.epoch == 2
    # ...and a run stopped after epoch 1, then resumed from its checkpoint.
    first = Runner.from_cfg(
        toy_detection_cfg(toy_root, tmp_path / 'resumed', max_epochs=1))
    first.train()
    ckpt = tmp_path / 'resumed' / 'epoch_1.pth'
    saved = torch.load(ckpt, weights_only=True)  # safe loading suffices
    assert saved['meta']['iter'] == 4 and saved['meta']['epoch'] == 1
    cfg = toy_detection_cfg(toy_root, tmp_path / 'resumed')
    cfg.resume, cfg.load_from = True, str(ckpt)
    resumed = Runner.from_cfg(cfg)
    seen = {}

    class Snapshot(Hook):
        """The state right after resuming, before any new step."""

        def before_train(self, runner):
            seen.update(iter=runner.iter, epoch=runner.epoch,
                        lrs=lrs_of(runner),
                        model={k: v.clone() for k, v in
                               runner.model.state_dict().items()},
                        opt=copy.deepcopy(
                            runner.optim_wrapper.optimizer.state_dict()))

    resumed.register_hook(Snapshot())
    resumed.train()
    # The resumed state is the saved one: weights, optimizer moments,
    # scheduler position and counters.
    assert seen['iter'] == 4 and seen['epoch'] == 1
    for key, value in saved['state_dict'].items():
        assert torch.equal(seen['model'][key], value), key
    for idx, state in saved['optimizer']['state'].items():
        assert torch.equal(seen['opt']['state'][idx]['exp_avg'],
                           state['exp_avg'])
    assert seen['lrs'] == [g['lr'] for g in
                           saved['optimizer']['param_groups']]
    assert resumed.iter == 8 and resumed.epoch == 2
    # Same schedule as the continuous run, step for step.
    assert lrs_of(resumed) == pytest.approx(lrs_of(full))
    assert osp.exists(tmp_path / 'resumed' / 'epoch_2.pth')


@pytest.mark.slow
def test_train_tool_resume_picks_newest_checkpoint(toy_root, tmp_path):
    work = tmp_path / 'work'
    cfg = toy_detection_cfg(toy_root, work, max_epochs=1)
    config = tmp_path / 'toy.py'
    cfg.dump(str(config))
    run = [sys.executable, osp.join(REPO, 'tools', 'train.py'), str(config),
           '--work-dir', str(work)]
    done = subprocess.run(run, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (work / 'epoch_1.pth').exists()
    again = subprocess.run(
        run + ['--resume', '--cfg-options', 'train_cfg.max_epochs=2'],
        cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    log = again.stdout + again.stderr
    assert 'resumed epoch: 1, iter: 4' in log
    assert 'Epoch(train) [2][4/4]' in log and 'Epoch(train) [1]' not in log


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(toy_root, tmp_path):
    work = tmp_path / 'ddp'
    cfg = toy_detection_cfg(toy_root, work, max_epochs=1)
    config = tmp_path / 'toy_ddp.py'
    cfg.dump(str(config))
    env = dict(os.environ, PYTHON=sys.executable, PORT='29517',
               OMP_NUM_THREADS='1')
    done = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), str(config), '2',
         '--work-dir', str(work)], cwd=REPO, capture_output=True, text=True,
        env=env, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    # 8 images, 2 processes x 2 images per step: 2 iterations per epoch.
    assert 'Epoch(train) [1][2/2]' in log
    assert 'Distributed launcher: pytorch' in log or 'world_size: 2' in log
    assert (work / 'epoch_1.pth').exists()
