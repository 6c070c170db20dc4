"""Measure a PartialNet model: parameters, MACs, latency and throughput.

Examples::

    # The T0 classifier on this CPU: latency on 1 thread, batch 32 on 2
    python tools/benchmark.py --arch t0 --threads 1 --batch-threads 2 \
        --batch 32 --json work_dirs/bench-t0.json

    # A config, eager and torch.compile, channels_last, bf16 and fp32
    python tools/benchmark.py configs/partialnet-t2_in1k.py --compile \
        --channels-last --dtype fp32 bf16

    # A detector: its backbone alone and the whole detector, 800x1280
    python tools/benchmark.py configs/mask-rcnn_partialnet-t0_coco.py \
        --batch 2 --repeats 5 --warmup 1

    # On a GPU, fp16 at batch 256
    python tools/benchmark.py --arch t2 --device cuda --dtype fp32 fp16 \
        --batch 256

Every model is timed in eval mode under ``torch.no_grad`` on random
normalised images (data loading and preprocessing are not timed), in train
form (as built) and deploy form (after ``switch_to_deploy()``), for every
``--dtype`` and, with ``--compile``, eagerly and compiled. Each measurement
runs ``--warmup`` untimed and ``--repeats`` timed passes and reports the
median and the interquartile range. The Markdown table goes to stdout,
progress to stderr, everything (with the machine's description) to
``--json``. The float32 ``torch.mm`` peak of the machine at the chosen
thread counts is measured first; each model's achieved GFLOP/s
(2 x MACs x images/s) is reported against it.

Exit status: 0 when every measurement ran, 1 on a bad input (with a
one-line message) or when a measurement failed (its row says why).
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
import traceback

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO)

ARCHS = ('t0', 't1', 't2', 's', 'm', 'l')
DTYPE_NAMES = ('fp32', 'bf16', 'fp16')
FORMS = ('train', 'deploy')
# PartialNet's total stride: a smaller side leaves no last-stage map.
MIN_SIDE = 32


def parse_args(argv=None):
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(
        description='Benchmark a PartialNet classifier or detector: '
        'params, MACs, latency, throughput, against the matmul peak',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    what = parser.add_argument_group('what to measure (one of)')
    what.add_argument('config', nargs='?',
                      help='an mmpretrain or mmdet config with a PartialNet '
                      'backbone')
    what.add_argument('--arch', choices=ARCHS,
                      help='the 1000-class classifier of this variant')
    parser.add_argument('--checkpoint',
                        help='weights to load (default: initialised ones)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--dtype', nargs='+', choices=DTYPE_NAMES,
                        default=['fp32'],
                        help='model and input dtypes, each measured')
    parser.add_argument('--form', nargs='+', choices=FORMS,
                        default=list(FORMS),
                        help='train: as built; deploy: after '
                        'switch_to_deploy()')
    parser.add_argument('--img-size', nargs='+', type=int,
                        metavar='H [W]',
                        help='input size; default 224 for classification, '
                        '800 1280 for detection')
    parser.add_argument('--batch', type=int, default=32,
                        help='batch size of the throughput measurement')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch threads for latency at batch 1 (and '
                        'for throughput unless --batch-threads); default: '
                        "torch's default")
    parser.add_argument('--batch-threads', type=int, default=None,
                        help='torch threads for the throughput measurement')
    parser.add_argument('--repeats', type=int, default=20,
                        help='timed runs per measurement')
    parser.add_argument('--warmup', type=int, default=5,
                        help='untimed runs before timing')
    parser.add_argument('--channels-last', action='store_true',
                        help='model and inputs in channels_last memory format')
    parser.add_argument('--compile', action='store_true',
                        help='also measure with torch.compile (both shown)')
    parser.add_argument('--peak-size', type=int, default=None,
                        help='largest torch.mm side of the peak measurement '
                        '(default 2048 on CPU, 8192 on CUDA)')
    parser.add_argument('--json', metavar='OUT',
                        help='write every number and setting here')
    parser.add_argument('--quiet', action='store_true',
                        help='no progress lines on stderr')
    args = parser.parse_args(argv)
    check_args(parser, args)
    return args


def check_args(parser, args):
    """Reject contradictory or impossible settings before building."""
    if (args.config is None) == (args.arch is None):
        parser.error('give a config or --arch (exactly one of them)')
    if args.arch and args.cfg_options:
        parser.error('--cfg-options needs a config, not --arch')
    if args.config is not None and not osp.isfile(args.config):
        parser.error(f'config file {args.config!r} does not exist')
    if args.img_size is not None:
        if len(args.img_size) not in (1, 2):
            parser.error('--img-size takes H or H W')
        if min(args.img_size) < MIN_SIDE:
            parser.error(f'--img-size {args.img_size}: each side must be at '
                         f'least {MIN_SIDE}, PartialNet\'s total stride')
    for name in ('batch', 'repeats', 'threads', 'batch_threads',
                 'peak_size'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got '
                         f'{value}')
    if args.warmup < 0:
        parser.error(f'--warmup must be >= 0, got {args.warmup}')
    # Duplicates would only repeat rows.
    args.dtype = list(dict.fromkeys(args.dtype))
    args.form = list(dict.fromkeys(args.form))


class Progress:
    """Numbered progress lines on stderr, one per step and its result."""

    def __init__(self, total, enabled=True):
        self.total, self.enabled, self.done = total, enabled, 0
        self.started = time.perf_counter()

    def note(self, text):
        if self.enabled:
            print(f'[benchmark] {text}', file=sys.stderr, flush=True)

    def start(self, label):
        self.done += 1
        self.label = label
        self.step_started = time.perf_counter()
        self.note(f'[{self.done}/{self.total}] {label} ...')

    def tick(self, phase, done, total):
        """Count runs of a measurement in place, on a terminal only."""
        if self.enabled and sys.stderr.isatty():
            end = '\n' if done == total else ''
            print(f'\r[benchmark]     {phase}: run {done}/{total}', end=end,
                  file=sys.stderr, flush=True)

    def finish(self, text):
        took = time.perf_counter() - self.step_started
        self.note(f'[{self.done}/{self.total}] {self.label}: {text} '
                  f'({took:.1f} s, {time.perf_counter() - self.started:.0f} '
                  's in all)')


def images_per_second(batch, seconds):
    """Summary of images/s from a summary of seconds per batch.

    The rate is monotone decreasing in the time, so quantiles map onto
    quantiles with the ends swapped.
    """
    return dict(median=batch / seconds['median'], q1=batch / seconds['q3'],
                q3=batch / seconds['q1'], min=batch / seconds['max'],
                max=batch / seconds['min'], n=seconds['n'])


def in_ms(seconds):
    return {k: v * 1e3 if k != 'n' else v for k, v in seconds.items()}


def timed(target, model, inputs, dtype, compiled, args, device, tick):
    """Seconds per pass of one setting (compiling first if asked).

    Returns:
        tuple[dict, float | None]: Summary of the timed passes and the
        seconds the first (compiling) pass took.
    """
    import torch
    from mmpartial.benchmark import summarize, time_runs
    from mmpartial.benchmark.timing import synchronize

    compile_s = None
    if compiled:
        # Fresh compilation per setting: Inductor bakes the thread count
        # into CPU kernels, and the shapes differ between settings.
        torch._dynamo.reset()
    run = target.runner(model, inputs, dtype, compiled=compiled)
    if compiled:
        start = time.perf_counter()
        run()
        synchronize(device)
        compile_s = time.perf_counter() - start
    return summarize(time_runs(run, args.repeats, args.warmup, device,
                               on_run=tick)), compile_s


def measure(target, model, img_size, compiled, args, device, dtype,
            progress):
    """Latency at batch 1 and throughput at ``--batch`` of one setting."""
    import torch

    def ticker(phase):
        return lambda done, total: progress.tick(phase, done, total)

    torch.set_num_threads(args.threads)
    inputs = target.make_inputs(1, img_size, device, dtype,
                                args.channels_last)
    latency, compile_latency = timed(target, model, inputs, dtype, compiled,
                                     args, device, ticker('latency, batch 1'))
    if args.batch == 1 and args.batch_threads == args.threads:
        batch_time, compile_batch = latency, None  # the same measurement
    else:
        torch.set_num_threads(args.batch_threads)
        inputs = target.make_inputs(args.batch, img_size, device, dtype,
                                    args.channels_last)
        batch_time, compile_batch = timed(
            target, model, inputs, dtype, compiled, args, device,
            ticker(f'throughput, batch {args.batch}'))
    return dict(
        latency=dict(batch=1, threads=args.threads, ms=in_ms(latency),
                     images_per_s=images_per_second(1, latency)),
        throughput=dict(batch=args.batch, threads=args.batch_threads,
                        batch_ms=in_ms(batch_time),
                        images_per_s=images_per_second(args.batch,
                                                       batch_time)),
        compile_s=dict(latency=compile_latency, throughput=compile_batch)
        if compiled else None)


def describe_form(target, model, img_size):
    """Params and MACs of one form of a target (fp32, CPU, batch 1)."""
    from mmpartial.benchmark import count_macs, count_params

    info = dict(available=True, params=count_params(model))
    inputs = target.make_inputs(1, img_size, 'cpu')
    try:
        info['macs'] = count_macs(target.mac_module(model),
                                  target.mac_inputs(inputs))
    except Exception as err:  # tracing can fail on exotic models
        info['macs'] = None
        info['macs_error'] = f'{type(err).__name__}: {err}'
    return info


def achieved(result, form_info, target):
    """GFLOP/s (2 x MACs x images/s) at the throughput and latency settings.

    None where the MACs are unknown or cover only part of what is timed
    (a detector's heads).
    """
    macs = form_info['macs']
    if macs is None or not target.macs_cover_model:
        return None, None
    return tuple(
        2 * macs['total'] * result[key]['images_per_s']['median'] / 1e9
        for key in ('throughput', 'latency'))


def attach_peak_fractions(results, peaks):
    """Each row's GFLOP/s as a fraction of the peak at its thread count."""
    for row in results:
        if row['status'] != 'ok':
            continue
        peak = peaks[row['throughput']['threads']]['gflops']
        row['peak_gflops'] = peak
        row['peak_fraction'] = None if row['gflops'] is None \
            else row['gflops'] / peak


def not_run(target, form, status, reason):
    return dict(target=target.name, form=form, status=status, reason=reason)


def failure_reason(err):
    """One line: the error and the file that raised it.

    Where it failed matters as much as what: "expected scalar type Float"
    from mmcv's NMS says the detector's post-processing needs float32.
    """
    message = str(err).strip().splitlines()[0] if str(err).strip() else ''
    text = f'{type(err).__name__}: {message}'[:300]
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return text
    path = frames[-1].filename
    # Package- or repository-relative (mmcv/ops/nms.py), not a venv's path.
    if 'site-packages' + os.sep in path:
        path = path.split('site-packages' + os.sep)[-1]
    elif osp.isabs(path):
        path = osp.relpath(path, REPO)
    return f'{text} (in {path}:{frames[-1].lineno})'


def run_setting(target, form, form_info, model, dtype_name, compiled, args,
                device, img_size, progress):
    """One result row: measure, and turn any failure into an error row."""
    import torch
    from mmpartial.benchmark import DTYPES

    mode = 'compiled' if compiled else 'eager'
    row = dict(target=target.name, form=form, dtype=dtype_name, mode=mode,
               precision=target.precision)
    try:
        with torch.no_grad():
            result = measure(target, model, img_size, compiled, args, device,
                             DTYPES[dtype_name], progress)
    except Exception as err:
        traceback.print_exc(file=sys.stderr)
        return dict(row, status='error', reason=failure_reason(err))
    macs = form_info['macs']
    gflops, latency_gflops = achieved(result, form_info, target)
    return dict(
        row, status='ok', params=form_info['params'],
        macs=macs and macs['total'],
        macs_conv_linear_matmul=macs and macs['conv_linear_matmul'],
        **result, gflops=gflops, gflops_latency=latency_gflops)


def benchmark_target(target, args, device, img_size, progress):
    """Every form, dtype and mode of one target.

    Returns:
        tuple[dict, list[dict]]: The target's description (params and MACs
        per form) and its result rows.
    """
    from mmpartial.benchmark import DTYPES, deploy_copy

    info = dict(name=target.name, description=target.description,
                mac_scope=target.mac_scope,
                compile_scope=target.compile_scope,
                precision=target.precision, forms={})
    rows = []
    for form in args.form:
        model, reason = (target.model, None) if form == 'train' \
            else deploy_copy(target.model)
        if model is None:
            info['forms'][form] = dict(available=False, reason=reason)
            rows.append(not_run(target, form, 'n/a', reason))
            progress.note(f'{target.name} {form}: n/a ({reason})')
            continue
        form_info = info['forms'][form] = describe_form(target, model,
                                                        img_size)
        for dtype_name in args.dtype:
            typed = target.prepare(model, device, DTYPES[dtype_name],
                                   args.channels_last)
            for compiled in ([False, True] if args.compile else [False]):
                progress.start(f'{target.name} {form} {dtype_name} '
                               f'{"compiled" if compiled else "eager"}')
                row = run_setting(target, form, form_info, typed, dtype_name,
                                  compiled, args, device, img_size, progress)
                rows.append(row)
                progress.finish(summary_text(row))
            del typed
            release_memory(device)
    return info, rows


def summary_text(row):
    if row['status'] != 'ok':
        return f'{row["status"]}: {row["reason"]}'
    return (f'latency {row["latency"]["ms"]["median"]:.2f} ms, '
            f'{row["throughput"]["images_per_s"]["median"]:.1f} img/s at '
            f'batch {row["throughput"]["batch"]}')


def release_memory(device):
    import torch
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def count_steps(targets, args):
    """Progress steps: one per target, available form, dtype and mode."""
    from mmpartial.benchmark.models import deploy_parts
    forms = sum(
        1 for target in targets for form in args.form
        if form == 'train' or deploy_parts(target.model))
    return forms * len(args.dtype) * (2 if args.compile else 1)


def measure_peaks(args, device, progress, before=None):
    """The fp32 matmul peak at every thread count the benchmark uses.

    Measured before and again after the models (pass the first result as
    ``before``): the better of the two stands, so that a neighbour's load
    during one of them does not inflate every model's fraction of it.
    """
    from mmpartial.benchmark import matmul_peak
    size = args.peak_size or (8192 if device.type == 'cuda' else 2048)
    peaks = {}
    for threads in dict.fromkeys([args.threads, args.batch_threads]):
        progress.note(f'float32 matmul peak on {threads} thread(s), sizes up '
                      f'to {size} ...')
        peak = matmul_peak(device, threads, size)
        progress.note(f'{peak["gflops"]:.1f} GFLOP/s (n={peak["size"]})')
        if before is not None:
            earlier = before[threads]
            runs = [earlier['gflops'], peak['gflops']]
            peak = dict(max(earlier, peak, key=lambda p: p['gflops']),
                        runs_gflops=runs)
        peaks[threads] = peak
    return peaks


def settings_of(args, kind, img_size, targets, device):
    import torch
    source = (f'--arch {args.arch}' if args.arch else args.config) + ' (' + \
        '; '.join(t.description for t in targets) + ')'
    return dict(
        source=source, config=args.config, arch=args.arch, kind=kind,
        checkpoint=args.checkpoint,
        cfg_options=dict(args.cfg_options) if args.cfg_options else None,
        device=str(device), dtypes=args.dtype, forms=args.form,
        img_size=list(img_size), batch=args.batch,
        latency_threads=args.threads, throughput_threads=args.batch_threads,
        interop_threads=torch.get_num_interop_threads(),
        repeats=args.repeats, warmup=args.warmup,
        channels_last=args.channels_last, compile=args.compile,
        cudnn_benchmark=torch.backends.cudnn.benchmark
        if device.type == 'cuda' else None,
        timing='wall clock per pass (device synchronised), eval mode, '
        'torch.no_grad, random inputs; data loading and preprocessing '
        'not timed')


def run(args):
    """The whole benchmark; returns the report dict."""
    import torch

    from mmpartial.benchmark import (MAC_COUNTING, build_targets,
                                     check_dtype, machine_info,
                                     resolve_device)
    from mmpartial.benchmark.models import DEFAULT_IMG_SIZE

    progress = Progress(0, enabled=not args.quiet)
    # Device and dtypes first: a tiny probe, before seconds of building.
    device = resolve_device(args.device)
    for name in args.dtype:
        check_dtype(device, name)
    default_threads = torch.get_num_threads()
    args.threads = args.threads or default_threads
    args.batch_threads = args.batch_threads or args.threads
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the best

    progress.note('building the model ...')
    targets, kind = build_targets(arch=args.arch, config=args.config,
                                  cfg_options=args.cfg_options,
                                  checkpoint=args.checkpoint)
    img_size = tuple(args.img_size or DEFAULT_IMG_SIZE[kind])
    if len(img_size) == 1:
        img_size = img_size * 2
    peaks = measure_peaks(args, device, progress)
    progress.total = count_steps(targets, args)

    report = dict(settings=settings_of(args, kind, img_size, targets,
                                       device),
                  machine=machine_info(device), mac_counting=MAC_COUNTING,
                  peak=None, targets=[], results=[])
    report['machine']['torch_default_threads'] = default_threads
    for target in targets:
        info, rows = benchmark_target(target, args, device, img_size,
                                      progress)
        report['targets'].append(info)
        report['results'].extend(rows)
    peaks = measure_peaks(args, device, progress, before=peaks)
    report['peak'] = list(peaks.values())
    attach_peak_fractions(report['results'], peaks)
    return report


def main(argv=None):
    args = parse_args(argv)
    from mmpartial.benchmark import BenchmarkError, markdown_report
    from mmpartial.benchmark.timing import UnsupportedError
    try:
        report = run(args)
    except (BenchmarkError, UnsupportedError) as err:
        sys.exit(f'error: {err}')
    print(markdown_report(report), end='')
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2, allow_nan=False)
    failed = [r for r in report['results'] if r['status'] == 'error']
    if failed:
        sys.exit(f'error: {len(failed)} measurement(s) failed; see the '
                 'table and the tracebacks above')


if __name__ == '__main__':
    main()
