"""tools/gpu_check.sh without a GPU says so and fails; what it runs, the
benchmark's ``--arch`` mode, needs only torch and mmengine (a GPU machine
has no mmcv). No figure is looked at."""
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
    out = tmp_path / 'gpu'
    done = run('bash', osp.join(REPO, 'tools', 'gpu_check.sh'), wheels, out,
               PYTHON=sys.executable)
    assert done.returncode == 2, done.stderr
    assert 'no CUDA device' in done.stderr
    assert torch.__version__ in done.stderr
    assert not out.exists()


# What a GPU machine lacks: the OpenMMLab codebases built on mmcv, and the
# ONNX packages. ``sys.modules[name] = None`` makes their import fail.
ABSENT = ('mmcv', 'mmdet', 'mmpretrain', 'mmseg', 'onnx', 'onnxruntime',
          'openvino')
WITHOUT = ('import runpy, sys\n'
           'sys.modules.update(dict.fromkeys({absent}))\n'
           'sys.argv = {argv}\n'
           'runpy.run_path({tool!r}, run_name="__main__")\n')


@pytest.mark.slow
def test_benchmark_runs_with_torch_and_mmengine_alone(tmp_path):
    """What gpu_check.sh runs (``--arch``, train step, AMP) needs neither
    mmcv nor mmpretrain nor the ONNX packages; asked for, a runtime that is
    not installed is n/a with its install command."""
    out = tmp_path / 'bench.json'
    tool = osp.join(REPO, 'tools', 'benchmark.py')
    argv = [tool, '--arch', 't0', '--img-size', '64', '--batch', '2',
            '--repeats', '2', '--warmup', '0', '--threads', '1',
            '--dtype', 'fp32', 'bf16', '--train-step', '--backend', 'eager',
            'onnxruntime', '--json', str(out)]
    done = run(sys.executable, '-c', WITHOUT.format(absent=ABSENT, argv=argv,
                                                    tool=tool))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {(r['form'], r['dtype'], r['status']) for r in report['results']
            if r['mode'] == 'eager'} == {
                (form, dtype, 'ok') for form in ('train', 'deploy')
                for dtype in ('fp32', 'bf16')}
    runtime = [r for r in report['results'] if r['mode'] == 'onnxruntime']
    assert {r['status'] for r in runtime} == {'n/a'}
    assert 'onnxruntime is not installed (pip install onnxruntime)' in \
        runtime[0]['reason']
    assert [(r['dtype'], r['status']) for r in report['train_step']] == [
        ('fp32', 'ok'), ('bf16', 'ok')]


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
