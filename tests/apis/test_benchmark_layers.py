"""The benchmark's layer profile (``--layers C H [W]``): every layer is
counted as its formula says, its deploy form computes what its train form
computes, a shape that does not fit a layer fails in one line, and a tiny
run gives a row per layer and form.

No test looks at speed: timings here are whatever a shared CPU gives.
"""
import copy
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from mmpartial.apis.benchmark import (LAYER_KINDS, BenchmarkOptions,
                                      build_layer_targets, deploy_copy,
                                      markdown_report, options_problem,
                                      run_benchmark)
from mmpartial.apis.benchmark.agreement import randomize_norms

TOOL = osp.join(REPO, 'tools', 'benchmark.py')
# Small enough for milliseconds, divisible by every split (16 for PAT_sf).
C, H, W = 32, 6, 10


@pytest.fixture(scope='module')
def targets():
    return {t.name: t for t in build_layer_targets([C, H, W])}


def test_every_kind_is_built_in_order(targets):
    assert list(targets) == list(LAYER_KINDS)
    x, = targets['pat_sf'].make_inputs(2, (H, W), 'cpu')
    assert x.shape == (2, C, H, W)
    with torch.no_grad():
        for target in targets.values():
            assert target.model(x).shape == x.shape, target.name


def test_macs_follow_the_formulas(targets):
    """Conv 3x3: 9 C^2 HW; depthwise: 9 C HW; PConv: 9 (C/4)^2 HW, in both
    forms; PAT_sf's products: its own cost formula (the conv part, qkv
    and proj, the two attention products)."""
    def macs(name, model=None):
        target = targets[name]
        return target.count_macs(model or target.model, (H, W))

    assert macs('conv3x3')['total'] == 9 * C * C * H * W
    assert macs('dwconv3x3')['total'] == 9 * C * H * W
    pconv = targets['pconv']
    deployed, _ = deploy_copy(pconv.model)
    for model in (pconv.model, deployed):
        assert macs('pconv', model)['total'] == 9 * (C // 4)**2 * H * W
    n, d, tokens = C // 4, C - C // 4, H * W
    assert macs('pat_sf')['conv_linear_matmul'] == \
        9 * n * n * tokens + 4 * tokens * d * d + 2 * tokens**2 * d
    # A block costs more than its mixer (the MLP) and keeps its params.
    assert macs('conv3x3_block')['total'] > macs('conv3x3')['total']


def test_deploy_form_computes_the_train_form(targets):
    """With non-trivial norms (what folding must carry over), outputs
    agree; the plain convolutions have no deploy form, and say why."""
    x, = targets['pat_ch'].make_inputs(2, (H, W), 'cpu')
    for name, target in targets.items():
        if target.deploy_problem:
            assert name in ('conv3x3', 'dwconv3x3'), name
            assert 'train form is its deploy form' in target.deploy_problem
            continue
        train = randomize_norms(copy.deepcopy(target.model)).eval()
        deployed, reason = deploy_copy(train)
        assert reason is None, name
        with torch.no_grad():
            torch.testing.assert_close(deployed(x), train(x), rtol=1e-4,
                                       atol=1e-5, msg=name)


@pytest.mark.parametrize('layers,kinds,fragments', [
    ([60, 7], None, ['--layers 60 7 7', 'pat_sf', 'divisible by 16',
                     '48 or 64 would fit']),
    ([30, 14, 28], None, ['--layers 30 14 28', 'pconv', 'divisible by 4',
                          '28 or 32 would fit']),
    ([31, 8], ['conv3x3', 'pat_sp'], ['pat_sp', 'divisible by 2']),
    ([64], None, ['--layers takes C H [W]']),
    ([64, 0], None, ['positive integers']),
])
def test_a_shape_that_does_not_fit_is_named(layers, kinds, fragments):
    problem = options_problem(BenchmarkOptions(layers=layers,
                                               layer_kinds=kinds))
    assert '\n' not in problem
    for fragment in fragments:
        assert fragment in problem


def test_layer_options_are_checked():
    # Only the layers asked for must fit.
    assert options_problem(BenchmarkOptions(
        layers=[30, 7], layer_kinds=['conv3x3', 'dwconv3x3'])) is None
    assert 'exactly one' in options_problem(
        BenchmarkOptions(arch='t0', layers=[64, 56]))
    assert '--layer-kinds needs --layers' in options_problem(
        BenchmarkOptions(arch='t0', layer_kinds=['pconv']))
    assert "unknown layer kind ['pconv4']" in options_problem(
        BenchmarkOptions(layers=[64, 56], layer_kinds=['pconv4']))
    assert '--img-size does not apply to --layers' in options_problem(
        BenchmarkOptions(layers=[64, 56], img_size=[224]))


def test_tiny_run_has_a_row_per_layer_and_form():
    report = run_benchmark(BenchmarkOptions(
        layers=[16, 4, 6], batch=2, repeats=2, warmup=1, threads=1,
        quiet=True))
    settings = report['settings']
    assert settings['kind'] == 'layers' and settings['img_size'] == [4, 6]
    rows = {(row['target'], row['form']): row for row in report['results']}
    assert set(rows) == {(name, form) for name in LAYER_KINDS
                         for form in ('train', 'deploy')}
    for (name, form), row in rows.items():
        if name in ('conv3x3', 'dwconv3x3') and form == 'deploy':
            assert row['status'] == 'n/a'
            continue
        assert row['status'] == 'ok', row
        assert row['params'] > 0 and row['macs'] > 0
        assert row['latency']['ms']['median'] > 0
        assert row['throughput']['batch'] == 2
    assert rows['conv3x3', 'train']['macs'] == 9 * 16 * 16 * 4 * 6
    text = markdown_report(report)
    assert '## PartialNet benchmark: layer profile, 16 channels at 4x6' \
        in text
    assert 'random 2x16x4x6 batches' in text
    assert '| layer | form | dtype | mode | params (K) | MMACs |' in text
    assert '| conv3x3 | train | fp32 | eager | 2.304 | 0.055 |' in text
    assert '| pat_sf_block | deploy | fp32 | eager |' in text


def run_tool(*args):
    return subprocess.run([sys.executable, TOOL, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_tool_runs_layers_in_onnxruntime_without_codebases(tmp_path):
    """The tool on a few layers, PyTorch and onnxruntime side by side,
    with mmcv, mmdet, mmpretrain and mmseg unimportable: the layer
    profile needs torch and mmengine only."""
    pytest.importorskip('onnxruntime')
    out = tmp_path / 'layers.json'
    blocked = ('import runpy, sys\n'
               "for name in ('mmcv', 'mmdet', 'mmpretrain', 'mmseg'):\n"
               '    sys.modules[name] = None\n'
               f'sys.argv = [{TOOL!r}, *sys.argv[1:]]\n'
               f"runpy.run_path({TOOL!r}, run_name='__main__')\n")
    proc = subprocess.run(
        [sys.executable, '-c', blocked, '--layers', '16', '8',
         '--layer-kinds', 'pconv', 'pat_ch_block', 'pat_sf', '--batch', '2',
         '--repeats', '2', '--warmup', '1', '--threads', '1', '--backend',
         'eager', 'onnxruntime', '--json', str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    # In the profile's order, whatever the order asked for.
    assert [(r['target'], r['form'], r['mode'], r['status'])
            for r in report['results']] == [
        (name, form, mode, 'ok') for name in ('pconv', 'pat_sf',
                                              'pat_ch_block')
        for form in ('train', 'deploy') for mode in ('eager', 'onnxruntime')]
    assert '| pat_sf | deploy | fp32 | onnxruntime |' in proc.stdout


@pytest.mark.slow
def test_tool_names_the_layer_that_does_not_fit():
    proc = run_tool('--layers', '100', '14')
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert '--layers 100 14 14: pat_sf needs channels divisible by 16' in \
        message and '96 or 112 would fit' in message
