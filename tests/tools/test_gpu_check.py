"""tools/gpu_check.sh and mmpartial.apis.gpu_check without a GPU: they say
so and fail; the check's own steps run on the CPU (``--device cpu``) and
write valid JSON. No figure is looked at."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from conftest import REPO

no_gpu = pytest.mark.skipif(torch.cuda.is_available(),
                            reason='a CUDA device is present')


def run(*cmd, **env):
    return subprocess.run(list(map(str, cmd)), cwd=REPO, capture_output=True,
                          text=True, timeout=600,
                          env=dict(os.environ, **env))


@pytest.mark.slow
@no_gpu
def test_script_without_cuda_says_so_and_fails(tmp_path):
    wheels = tmp_path / 'wheels'  # never reached: nothing is installed
    out = tmp_path / 'gpu.json'
    done = run('bash', osp.join(REPO, 'tools', 'gpu_check.sh'), wheels, out,
               PYTHON=sys.executable)
    assert done.returncode == 2, done.stderr
    assert 'no CUDA device' in done.stderr
    assert torch.__version__ in done.stderr
    assert not out.exists()


@pytest.mark.slow
@no_gpu
def test_module_without_cuda_says_so_and_fails(tmp_path):
    out = tmp_path / 'gpu.json'
    done = run(sys.executable, '-m', 'mmpartial.apis.gpu_check', '--out', out)
    assert done.returncode == 2
    assert 'no CUDA device is available' in done.stderr
    assert not out.exists()


@pytest.mark.slow
def test_check_runs_its_steps_on_cpu(tmp_path):
    """The whole flow on a tiny setting: correctness (CPU against itself),
    side-by-side throughput, an AMP train step, JSON and tables."""
    out = tmp_path / 'gpu.json'
    done = run(sys.executable, '-m', 'mmpartial.apis.gpu_check', '--device',
               'cpu', '--archs', 't0', '--dtypes', 'fp32', '--amp-dtypes',
               'bf16', '--batch', 2, '--img-size', 64, '--repeats', 2,
               '--warmup', 0, '--no-compile', '--out', out)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [(r['arch'], r['form'], r['ok']) for r in report['correctness']] \
        == [('t0', 'train', True), ('t0', 'deploy', True)]
    assert report['correctness'][0]['params_with_grad'] > 0
    rows = report['throughput']
    assert [(r['form'], r['mode'], r['status']) for r in rows] == [
        ('train', 'eager', 'ok'), ('deploy', 'eager', 'ok')]
    assert all(r['images_per_s']['median'] > 0 and r['batch'] == 2
               for r in rows)
    step, = report['train_step']
    assert step['status'] == 'ok' and step['amp'] and step['dtype'] == 'bf16'
    assert step['memory']['step_peak_mib'] > 0
    assert report['goal']['images_per_s'] == 11800
    assert report['skipped'] == []
    assert '| t0 | deploy | ' in done.stdout and 'GPU check' in done.stdout


def test_script_installs_what_the_wheel_helper_downloads():
    """Every package gpu_check.sh may install is one gpu_wheels.sh fetches,
    and both stay off the package index on the GPU side."""
    with open(osp.join(REPO, 'tools', 'gpu_check.sh')) as f:
        check = f.read()
    with open(osp.join(REPO, 'tools', 'gpu_wheels.sh')) as f:
        wheels = f.read()
    installed = set(re.findall(r":\s*'([\w.=-]+)'", check))
    downloaded = re.search(r'packages=\(([^)]*)\)', wheels).group(1).split()
    downloaded = {name.split('==')[0] for name in downloaded}
    assert {name.split('==')[0] for name in installed} <= downloaded
    assert '--no-index' in check and '--find-links' in check
    assert 'mmengine==0.10.7' in check and 'mmengine==0.10.7' in wheels
