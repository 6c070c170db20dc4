"""The cluster scripts' command lines, checked without Slurm or GPUs: a
fake ``srun`` (or ``python``) first on PATH records its arguments."""
import os
import os.path as osp
import stat
import subprocess

import pytest

from conftest import REPO

RECORDER = '''#!/usr/bin/env bash
printf '%s\\n' "$@" > "$RECORD"
printf '%s' "${MASTER_PORT:-}" > "$RECORD.port"
'''


@pytest.fixture
def fake(tmp_path):
    """``fake(name)`` puts a recorder called ``name`` in a PATH folder;
    ``fake.run(script, *args, **env)`` runs a tools/ script with that PATH
    and returns the recorded arguments (one list entry per argument) and
    the MASTER_PORT the recorder saw."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    record = tmp_path / 'args.txt'

    def make(name):
        path = bin_dir / name
        path.write_text(RECORDER)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return str(path)

    def run(script, *args, **env):
        environ = dict(os.environ, RECORD=str(record),
                       PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
        for key in ('GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'SRUN_ARGS',
                    'PORT', 'MASTER_PORT', 'NNODES', 'NODE_RANK',
                    'MASTER_ADDR'):
            environ.pop(key, None)
        environ.update(env)
        done = subprocess.run(
            ['bash', osp.join(REPO, 'tools', script), *args], cwd=REPO,
            env=environ, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        port = (tmp_path / 'args.txt.port').read_text()
        return record.read_text().splitlines(), port

    make.run = run
    return make


def test_slurm_train_command_line(fake):
    fake('srun')
    python = fake('python-for-test')
    args, port = fake.run('slurm_train.sh', 'gpu', 'pn-t0',
                          'configs/mask-rcnn_partialnet-t0_coco.py',
                          'work_dirs/pn t0', '--amp', '--cfg-options',
                          'train_cfg.max_epochs=1', PYTHON=python,
                          PORT='29611', GPUS='16', GPUS_PER_NODE='8',
                          CPUS_PER_TASK='4',
                          SRUN_ARGS='--quotatype=auto --time=1-0')
    assert args == [
        '-p', 'gpu', '--job-name=pn-t0', '--gres=gpu:8', '--ntasks=16',
        '--ntasks-per-node=8', '--cpus-per-task=4', '--kill-on-bad-exit=1',
        '--quotatype=auto', '--time=1-0',
        python, '-u', osp.join(REPO, 'tools', 'train.py'),
        'configs/mask-rcnn_partialnet-t0_coco.py',
        '--work-dir=work_dirs/pn t0', '--launcher=slurm', '--amp',
        '--cfg-options', 'train_cfg.max_epochs=1'
    ]
    assert port == '29611'  # mmengine's slurm launcher reads MASTER_PORT


def test_slurm_test_command_line_and_defaults(fake):
    fake('srun')
    python = fake('python-for-test')
    args, port = fake.run('slurm_test.sh', 'gpu', 'eval',
                          'configs/upernet_partialnet-t0_ade20k.py',
                          'work_dirs/iter_160000.pth', '--out',
                          'preds.pkl', PYTHON=python)
    assert args == [
        '-p', 'gpu', '--job-name=eval', '--gres=gpu:8', '--ntasks=8',
        '--ntasks-per-node=8', '--cpus-per-task=5', '--kill-on-bad-exit=1',
        python, '-u', osp.join(REPO, 'tools', 'test.py'),
        'configs/upernet_partialnet-t0_ade20k.py',
        'work_dirs/iter_160000.pth', '--launcher=slurm', '--out', 'preds.pkl'
    ]
    assert port == '29500'


@pytest.mark.parametrize('script', ['slurm_train.sh', 'slurm_test.sh',
                                    'dist_test.sh'])
def test_too_few_arguments_print_usage(script):
    done = subprocess.run(['bash', osp.join(REPO, 'tools', script), 'a'],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and 'usage:' in done.stderr


def test_dist_test_torchrun_line(fake):
    python = fake('python-for-test')
    args, _ = fake.run('dist_test.sh', 'configs/retinanet_partialnet-t0_coco'
                       '.py', 'ckpt.pth', '2', '--show-dir', 'vis',
                       PYTHON=python, PORT='29511')
    assert args == [
        '-m', 'torch.distributed.run', '--nnodes=1', '--node_rank=0',
        '--master_addr=127.0.0.1', '--master_port=29511',
        '--nproc_per_node=2', osp.join(REPO, 'tools', 'test.py'),
        'configs/retinanet_partialnet-t0_coco.py', 'ckpt.pth',
        '--launcher', 'pytorch', '--show-dir', 'vis'
    ]
