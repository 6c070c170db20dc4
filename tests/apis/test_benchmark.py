"""tools/benchmark.py (mmpartial.apis.benchmark) on tiny settings: it runs,
its JSON holds positive numbers that agree with the model, and bad inputs
fail with a clear message.

No test looks at speed: timings here are whatever a shared CPU gives.
"""
import json
import os
import os.path as osp
import runpy
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO
from mmpartial.apis.benchmark import (ArchClassifier, BenchmarkOptions,
                                      UnsupportedError, check_dtype,
                                      deploy_copy, images_per_second,
                                      machine_info, options_problem,
                                      paired_speedup, summarize,
                                      time_side_by_side)
from mmpartial.apis.benchmark import device as devices
from mmpartial.apis.benchmark.agreement import (check_against_cpu,
                                                relative_difference)
from mmpartial.apis.benchmark.runtimes import RuntimeSession
from mmpartial.apis.benchmark.targets import ClassifierTarget
from mmpartial.apis.counting import model_macs

TOOL = osp.join(REPO, 'tools', 'benchmark.py')
# Seconds, not minutes: 64x64 images, 2 timed runs.
TINY = ['--img-size', '64', '64', '--batch', '2', '--repeats', '2',
        '--warmup', '1']
T0_CLASSIFIER_PARAMS = 3558240


# The three runs that must succeed, started together: much of each is
# single-threaded (imports, tracing), so on a small machine they overlap
# well. One torch thread each keeps them from fighting over the cores.
RUNS = {
    # Both forms in PyTorch and in the ONNX runtimes.
    'arch': ['--arch', 't0', *TINY, '--backend', 'eager', 'onnxruntime',
             'openvino'],
    'config': [osp.join(REPO, 'configs', 'partialnet-t0_in1k.py'), *TINY,
               '--form', 'train'],
    # Training steps only, eager and compiled.
    'train_step': ['--arch', 't0', '--img-size', '64', '64', '--batch', '2',
                   '--repeats', '2', '--warmup', '1', '--train-step',
                   '--no-inference', '--compile'],
    # Few proposals keep the detector's heads (not looked at) cheap.
    'detection': [
        osp.join(REPO, 'configs', 'mask-rcnn_partialnet-t0_coco.py'),
        '--img-size', '96', '128', '--batch', '1', '--repeats', '2',
        '--warmup', '1', '--form', 'train',
        '--cfg-options', 'model.test_cfg.rpn.nms_pre=100',
        'model.test_cfg.rpn.max_per_img=20'
    ],
    # The toy UperNet: backbone and whole segmentor, both forms.
    'segmentation': [
        osp.join(REPO, 'configs', 'upernet_partialnet-t0_toy-ade.py'),
        '--img-size', '64', '96', '--batch', '1', '--repeats', '2',
        '--warmup', '1'
    ],
}


@pytest.fixture(scope='module')
def tool_runs(tmp_path_factory):
    """{name: (parsed --json, stdout)} of :data:`RUNS`, run concurrently."""
    out_dir = tmp_path_factory.mktemp('bench')
    procs = {
        name: subprocess.Popen(
            [sys.executable, TOOL, *args, '--threads', '1', '--json',
             str(out_dir / f'{name}.json')],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        for name, args in RUNS.items()
    }
    results = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, f'{name}: {stderr[-3000:]}'
        with open(out_dir / f'{name}.json') as f:
            results[name] = json.load(f), stdout
    return results


@pytest.fixture
def arch_run(tool_runs):
    return tool_runs['arch']


@pytest.fixture
def config_run(tool_runs):
    return tool_runs['config']


def rows(report, status='ok'):
    return [row for row in report['results'] if row['status'] == status]


def assert_positive_measurement(row):
    assert row['latency']['batch'] == 1
    for stats in (row['latency']['ms'], row['throughput']['images_per_s']):
        assert 0 < stats['min'] <= stats['q1'] <= stats['median'] \
            <= stats['q3'] <= stats['max']
    assert row['params'] > 0


@pytest.mark.slow
def test_arch_report(arch_run):
    report, stdout = arch_run
    settings, machine = report['settings'], report['machine']
    assert settings['arch'] == 't0' and settings['img_size'] == [64, 64]
    assert settings['batch'] == 2 and settings['repeats'] == 2
    assert settings['threads'] == 1
    assert machine['torch_version'] == torch.__version__
    assert machine['device_name'] and machine['device_type'] == 'cpu'
    # The allocator's settings change large-batch CPU timings: stated.
    malloc = ', '.join(f'{key}={value}' for key, value in
                       machine['malloc'].items()) or 'defaults'
    assert f'glibc malloc: {malloc}' in stdout
    assert 'mmengine.analysis' in report['mac_counting']
    # No GPU, no check against the CPU.
    assert report['agreement'] == []

    ok = rows(report)
    eager = [row for row in ok if row['mode'] == 'eager']
    train = [row for row in eager if row['form'] == 'train']
    assert len(train) == 1 and train[0]['dtype'] == 'fp32'
    assert train[0]['params'] == T0_CLASSIFIER_PARAMS
    assert train[0]['throughput']['batch'] == 2
    # One row per form and backend, in that order.
    assert [(row['form'], row['mode']) for row in report['results']] == [
        (form, backend) for form in ('train', 'deploy')
        for backend in ('eager', 'onnxruntime', 'openvino')]
    deploy = [row for row in eager if row['form'] == 'deploy']
    assert len(deploy) == 1
    for row in ok:
        assert_positive_measurement(row)
        assert 0 < row['macs'] and row['gflops'] > 0
        assert row['gflops'] == pytest.approx(
            2 * row['macs'] * row['throughput']['images_per_s']['median'] /
            1e9)

    # Deploy against train, timed side by side: every round has one pass
    # of each, and the speed-up pairs them round by round.
    found = {(s['form'], s['mode'], s['baseline']): s
             for s in report['speedups']}
    speedup = found['deploy', 'eager', 'train eager']
    for key in ('latency', 'throughput'):
        base_ms = np.array(train[0][key]['samples_ms'])
        deploy_ms = np.array(deploy[0][key]['samples_ms'])
        assert len(base_ms) == len(deploy_ms) == 2
        assert speedup[key] == pytest.approx(np.median(base_ms / deploy_ms))
    assert 'Speed-ups (same weights and dtype' in stdout
    assert f'| classifier | fp32 | deploy | eager | train eager | ' \
        f'{speedup["latency"]:.2f}x |' in stdout
    # Each runtime: both forms timed, the deploy form against the train
    # form in the same runtime.
    for runtime in ('onnxruntime', 'openvino'):
        timed = {row['form'] for row in ok if row['mode'] == runtime}
        if timed:
            assert timed == {'train', 'deploy'}
            assert ('deploy', runtime, f'train {runtime}') in found
        else:  # not installed: said so, with the command
            row = next(r for r in report['results'] if r['mode'] == runtime)
            assert 'is not installed (pip install' in row['reason']
    # The report says how the runtimes' graphs were made and checked.
    assert '- onnxruntime, openvino: the form exported to ONNX' in stdout
    assert 'checked against PyTorch' in stdout

    # The same rows as a Markdown table on stdout (the first table).
    lines = stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith('|'))
    table = [line for line in lines[first:first + 2 + len(report['results'])]
             if line.startswith('|')]
    assert 'latency b=1 (ms)' in table[0] and 'GFLOP/s' in table[0]
    assert '| classifier | train | fp32 | onnxruntime | 3.558 |' in stdout
    assert len(table) == 2 + len(report['results'])
    assert '| classifier | train | fp32 | eager | 3.558 |' in stdout


@pytest.mark.slow
def test_config_matches_arch(arch_run, config_run):
    report, _ = config_run
    assert report['settings']['kind'] == 'classification'
    assert [row['form'] for row in report['results']] == ['train']
    row, = rows(report)
    assert_positive_measurement(row)
    arch_row = next(r for r in arch_run[0]['results'] if r['form'] == 'train')
    assert row['params'] == T0_CLASSIFIER_PARAMS
    # --arch builds the same classifier without mmpretrain.
    assert row['macs'] == arch_row['macs'] > 0


@pytest.mark.slow
def test_detection_config(tool_runs):
    report, stdout = tool_runs['detection']
    assert report['settings']['kind'] == 'detection'
    assert report['settings']['img_size'] == [96, 128]
    by_target = {row['target']: row for row in rows(report)}
    assert set(by_target) == {'backbone', 'detector'}
    backbone, detector = by_target['backbone'], by_target['detector']
    for row in (backbone, detector):
        assert_positive_measurement(row)
    assert backbone['params'] < detector['params']
    assert backbone['macs'] > 0 and backbone['gflops'] > 0
    # The detector's MACs are mmdet's get_flops convention (fixed RoI
    # counts), not what the timed pass does: no GFLOP/s is claimed.
    assert detector['macs'] > backbone['macs']
    assert detector['gflops'] is None
    assert 'get_flops' in report['targets'][1]['mac_scope']
    for target in ('backbone', 'detector'):
        assert f'| {target} | train | fp32 | eager |' in stdout


@pytest.mark.slow
def test_segmentation_config(tool_runs):
    report, stdout = tool_runs['segmentation']
    assert report['settings']['kind'] == 'segmentation'
    assert report['settings']['img_size'] == [64, 96]
    ok = rows(report)
    assert {(row['target'], row['form']) for row in ok} == {
        (target, form) for target in ('backbone', 'segmentor')
        for form in ('train', 'deploy')}
    by_key = {(row['target'], row['form']): row for row in ok}
    for row in ok:
        assert_positive_measurement(row)
    backbone = by_key['backbone', 'train']
    segmentor = by_key['segmentor', 'train']
    # The decode head is counted (the auxiliary head, training only, not).
    assert backbone['params'] < segmentor['params']
    assert 0 < backbone['macs'] < segmentor['macs']
    assert segmentor['gflops'] > 0
    # Folding shrinks the backbone inside the segmentor too.
    assert by_key['segmentor', 'deploy']['params'] < segmentor['params']
    assert '| segmentor | deploy | fp32 | eager |' in stdout


@pytest.mark.parametrize('config,kind,method', [
    ('upernet_partialnet-t0_toy-ade.py', 'segmentation', 'encode_decode'),
    ('mask-rcnn_partialnet-t0_coco.py', 'detection', 'extract_feat'),
])
@pytest.mark.slow
def test_compiled_predict_goes_through_the_compiled_part(
        monkeypatch, config, kind, method):
    """With --compile a segmentor's or detector's predict() goes through
    the compiled tensor part (encode_decode, extract_feat), and the model
    is left as it was."""
    from mmpartial.apis.benchmark import build as benchmark_build
    from mmpartial.apis.benchmark.build import build_targets

    # The tool quiets mmengine's logger for its report; not in pytest.
    monkeypatch.setattr(benchmark_build, 'quiet_mmengine_logs',
                        lambda: None)
    targets, built_kind = build_targets(
        config=osp.join(REPO, 'configs', config))
    assert built_kind == kind
    target = targets[1]
    compiled_calls = []

    def fake_compile(fn, options=None):
        def wrapper(*args, **kwargs):
            compiled_calls.append((fn.__name__, options))
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(torch, 'compile', fake_compile)
    model = target.prepare(target.model, torch.device('cpu'), torch.float32,
                           False)
    inputs = target.make_inputs(1, (64, 96), torch.device('cpu'))
    with torch.no_grad():
        results = target.runner(model, inputs, compiled=True,
                                compile_options=dict(freezing=True))()
    # --compile-options reach torch.compile.
    assert compiled_calls == [(method, dict(freezing=True))]
    assert len(results) == 1
    if kind == 'segmentation':
        assert results[0].pred_sem_seg.data.shape == (1, 64, 96)
    else:
        assert results[0].pred_instances.bboxes.shape[1] == 4
    assert method not in vars(model)


def test_config_of_another_codebase(tool_main, capsys, tmp_path):
    config = tmp_path / 'pose.py'
    config.write_text("default_scope = 'mmpose'\nmodel = dict(type='x')\n")
    assert_fails(tool_main, capsys, [str(config), *TINY],
                 "default_scope='mmpose'", 'mmpretrain, mmdet, mmseg')


@pytest.fixture(scope='module')
def tool_main():
    """tools/benchmark.py's ``main``, run in this process: its bad-input
    errors come before anything is built or timed."""
    return runpy.run_path(TOOL)['main']


def assert_fails(main, capsys, args, *fragments):
    """``main(args)`` exits with a one-line error holding ``fragments`` (an
    exception other than SystemExit, a traceback, fails the test)."""
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    code = exit_.value.code
    # sys.exit('error: ...') carries the message; argparse prints it.
    message = code if isinstance(code, str) else \
        capsys.readouterr().err.strip().splitlines()[-1]
    assert code != 0
    for fragment in fragments:
        assert fragment in message, message


def test_unknown_arch(tool_main, capsys):
    assert_fails(tool_main, capsys, ['--arch', 't9'], "invalid choice: 't9'")


def test_missing_config(tool_main, capsys, tmp_path):
    assert_fails(tool_main, capsys, [str(tmp_path / 'nope.py'), *TINY],
                 'nope.py', 'does not exist')


def test_file_that_is_not_a_config(tool_main, capsys, tmp_path):
    notes = tmp_path / 'notes.txt'
    notes.write_text('not a config\n')
    assert_fails(tool_main, capsys, [str(notes), *TINY], 'notes.txt',
                 'is not a config file', '.py, .json, .yaml, .yml')


def test_config_without_partialnet(tool_main, capsys, tmp_path):
    config = tmp_path / 'resnet.py'
    config.write_text(
        "default_scope = 'mmpretrain'\n"
        "model = dict(type='ImageClassifier', backbone=dict(type='ResNet', "
        "depth=18), head=dict(type='LinearClsHead', num_classes=10, "
        "in_channels=512))\n")
    assert_fails(tool_main, capsys, [str(config), *TINY], 'ResNet backbone',
                 "model.backbone.type='ResNet'", 'not PartialNet')


def test_small_image_is_rejected(tool_main, capsys):
    assert_fails(tool_main, capsys, ['--arch', 't0', '--img-size', '16'],
                 'at least 32')


def test_options_are_checked_before_building():
    """The checks behind the tool's one-line errors, as a function."""
    assert 'exactly one' in options_problem(BenchmarkOptions())
    assert 'at least 32' in options_problem(
        BenchmarkOptions(arch='t0', img_size=[16]))
    assert "unknown arch 't9'" in options_problem(BenchmarkOptions(arch='t9'))
    options = BenchmarkOptions(arch='t0', dtype=['fp32', 'fp32'],
                               form=['deploy', 'train', 'deploy'])
    assert options_problem(options) is None
    assert options.dtype == ['fp32'] and options.form == ['deploy', 'train']
    assert '--compile-options needs --compile' in options_problem(
        BenchmarkOptions(arch='t0', compile_options=dict(freezing=True)))
    assert "unknown --compile-options ['freezng']" in options_problem(
        BenchmarkOptions(arch='t0', compile=True,
                         compile_options=dict(freezng=True)))
    assert options_problem(BenchmarkOptions(
        arch='t0', compile=True,
        compile_options={'freezing': True, 'cpp.threads': 1})) is None


@pytest.mark.skipif(torch.cuda.is_available(), reason='a GPU is present')
def test_cuda_without_gpu(tool_main, capsys):
    assert_fails(tool_main, capsys, ['--arch', 't0', '--device', 'cuda',
                                     *TINY], '--device cuda', 'no CUDA device')


def test_unsupported_dtype_is_named(monkeypatch):

    def no_half(device, dtype):
        if dtype is torch.float16:
            raise RuntimeError('"slow_conv2d_cpu" not implemented for '
                               "'Half'")

    monkeypatch.setattr(devices, '_probe_dtype', no_half)
    cpu = torch.device('cpu')
    devices.check_dtype(cpu, 'fp32')
    devices.check_dtype(cpu, 'bf16')
    with pytest.raises(UnsupportedError,
                       match=r"--dtype fp16 is not supported on cpu .*"
                       r"not implemented for 'Half'"):
        devices.check_dtype(cpu, 'fp16')


def test_dtype_probe_on_this_cpu():
    """Whatever this CPU supports passes; the rest fails clearly."""
    check_dtype(torch.device('cpu'), 'fp32')
    for name in ('bf16', 'fp16'):
        try:
            check_dtype(torch.device('cpu'), name)
        except UnsupportedError as err:
            assert f'--dtype {name}' in str(err)


def test_deploy_na_without_switch_to_deploy():
    model, reason = deploy_copy(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1)))
    assert model is None and 'no switch_to_deploy()' in reason


def test_macs_of_t0_at_224_match_the_spec():
    """The counter's count of --arch's classifier is the paper's (spec
    table: 0.247 G, 0.243 G without norms)."""
    model = ArchClassifier('t0').eval()
    target = ClassifierTarget('classifier', model, '')
    macs = target.count_macs(model, (224, 224))
    assert macs == model_macs(model, (224, 224))
    assert round(macs['total'] / 1e9, 3) == 0.247
    assert round(macs['conv_linear_matmul'] / 1e9, 3) == 0.243
    assert macs['by_operator']['conv'] > 0 and 'batch_norm' in \
        macs['by_operator']


def test_arch_classifier_is_the_configs_model():
    """--arch's torch-only classifier has the parameter names and shapes of
    configs/partialnet-t0_in1k.py's ImageClassifier, so its checkpoints
    load."""
    from mmpartial.apis import init_model
    built = init_model(osp.join(REPO, 'configs', 'partialnet-t0_in1k.py'))
    ours = ArchClassifier('t0')
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in built.state_dict().items()}
    ours.load_state_dict(built.state_dict())
    ours.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), built(x, mode='tensor'), atol=1e-6)


def test_check_against_cpu_compares_every_form():
    """On the CPU against itself every difference is 0; each form's
    forward and backward are compared (parameter gradients included)."""
    model = ArchClassifier('t0').eval()
    target = ClassifierTarget('classifier', model, '')
    models = dict(train=model, deploy=deploy_copy(model)[0])
    rows = check_against_cpu(target, models, torch.device('cpu'), (64, 64))
    assert [(r['form'], r['ok']) for r in rows] == [
        ('train', True), ('deploy', True)]
    assert all(r['outputs'] == r['input_grad'] == r['param_grads'] == 0
               for r in rows)
    assert rows[0]['params_with_grad'] > rows[1]['params_with_grad'] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_computes_what_the_cpu_computes():
    model = ArchClassifier('t0').eval()
    target = ClassifierTarget('classifier', model, '')
    models = dict(train=model, deploy=deploy_copy(model)[0])
    for row in check_against_cpu(target, models, torch.device('cuda'),
                                 (224, 224)):
        assert row['ok'], row


def test_relative_difference():
    ref = torch.tensor([1., -4., 2.])
    assert relative_difference(ref, ref) == 0
    # Over the largest reference magnitude (4), not the element's own.
    assert relative_difference(ref + torch.tensor([0., 0., .004]),
                               ref) == pytest.approx(1e-3, rel=1e-4)


def test_a_graph_the_runtime_refuses_is_named(tmp_path):
    """The runtime's own message, which names what it cannot read."""
    pytest.importorskip('onnxruntime')
    graph = tmp_path / 'broken.onnx'
    graph.write_bytes(b'not a graph')
    with pytest.raises(UnsupportedError, match='onnxruntime refuses '
                       'broken.onnx: .*'):
        RuntimeSession('onnxruntime', str(graph), 1, torch.device('cpu'))


def test_unknown_backend_lists_the_known_ones():
    problem = options_problem(BenchmarkOptions(arch='t0',
                                               backend=['tensorrt']))
    assert "unknown backend ['tensorrt']" in problem
    assert "'onnxruntime', 'openvino'" in problem


def test_summaries():
    stats = summarize([0.4, 0.1, 0.2, 0.3])
    assert stats['median'] == pytest.approx(0.25)
    assert (stats['min'], stats['max'], stats['n']) == (0.1, 0.4, 4)
    rate = images_per_second(8, stats)
    assert rate['median'] == pytest.approx(32)
    assert rate['min'] == pytest.approx(20) and rate['max'] == \
        pytest.approx(80)
    assert rate['q1'] <= rate['median'] <= rate['q3']


def test_side_by_side_rounds_take_turns():
    """One pass of each callable per round, the order rotating, every pass
    timed on its own."""
    calls = []
    runs = {key: (lambda key=key: calls.append(key)) for key in 'abc'}
    samples = time_side_by_side(runs, repeats=3, warmup=1,
                                device=torch.device('cpu'))
    assert calls == list('abc') + list('abc') + list('bca') + list('cab')
    assert set(samples) == set('abc')
    assert all(len(times) == 3 and min(times) >= 0
               for times in samples.values())


def test_deploy_compiled_is_compared_with_train_compiled():
    """Besides every setting over train eager, the compiled deploy form
    over the compiled train form, round by round."""
    from mmpartial.apis.benchmark.run import speedups

    def row(form, mode, ms):
        return dict(target='m', dtype='fp32', form=form, mode=mode,
                    status='ok', latency=dict(samples_ms=ms),
                    throughput=dict(samples_ms=ms))

    rows = [row('train', 'eager', [4., 8.]), row('train', 'compiled',
                                                 [2., 4.]),
            row('deploy', 'eager', [2., 4.]), row('deploy', 'compiled',
                                                  [1., 4.])]
    found = {(s['form'], s['mode'], s['baseline']): s['latency']
             for s in speedups(rows)}
    assert found == {('train', 'compiled', 'train eager'): 2.,
                     ('deploy', 'eager', 'train eager'): 2.,
                     ('deploy', 'compiled', 'train eager'): 3.,
                     ('deploy', 'compiled', 'train compiled'): 1.5}


def test_paired_speedup_pairs_rounds():
    """Ratios are taken round by round, then the median: a drift that slows
    both settings in one round cancels, unlike a ratio of medians."""
    base, other = [2., 4., 40.], [1., 4., 10.]
    assert paired_speedup(base, other) == pytest.approx(2.)
    assert np.median(base) / np.median(other) == pytest.approx(1.)


@pytest.mark.slow
def test_train_step_mode(tool_runs):
    """Forward, backward and optimiser step of the train form, eager and
    compiled side by side: images/s, step times and peak memory."""
    report, stdout = tool_runs['train_step']
    assert report['settings']['train_step'] is True
    assert report['settings']['inference'] is False
    assert report['results'] == []
    rows = report['train_step']
    assert [(r['mode'], r['status']) for r in rows] == [
        ('eager', 'ok'), ('compiled', 'ok')]
    for row in rows:
        assert row['form'] == 'train' and row['batch'] == 2
        stats = row['images_per_s']
        assert 0 < stats['min'] <= stats['median'] <= stats['max']
        assert len(row['samples_ms']) == 2 and min(row['samples_ms']) > 0
        memory = row['memory']
        assert memory['step_peak_mib'] > 0 and memory['peak_mib'] > 0
        assert memory['method']
    assert rows[1]['speedup_over_eager'] > 0
    assert 'Train step (forward, backward and optimiser step' in stdout
    assert '| classifier | fp32 | compiled | 2 |' in stdout


def test_detector_has_no_train_step(tmp_path):
    """A detector's loss needs annotated samples: its train step is n/a
    with the reason; the backbone's runs (checked through the function,
    without a tool run)."""
    from mmpartial.apis.benchmark.targets import DetectorTarget
    from mmpartial.apis.benchmark.train_step import loss_module
    target = DetectorTarget('detector', None, '')
    module, inputs, reason = loss_module(target, None, None)
    assert module is None and 'annotated samples' in reason


def test_machine_info_names_the_allocator_settings(monkeypatch):
    for key in [k for k in os.environ if k.startswith('MALLOC_')]:
        monkeypatch.delenv(key)
    assert machine_info(torch.device('cpu'))['malloc'] == {}
    monkeypatch.setenv('MALLOC_MMAP_THRESHOLD_', '4294967296')
    monkeypatch.setenv('MALLOCX', 'not glibc')
    assert machine_info(torch.device('cpu'))['malloc'] == {
        'MALLOC_MMAP_THRESHOLD_': '4294967296'}
