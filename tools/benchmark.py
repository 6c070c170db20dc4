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
``--dtype`` and, with ``--compile``, eagerly and compiled. Per dtype and
batch size, the forms and modes are timed side by side: ``--warmup`` untimed
and ``--repeats`` timed rounds, each round one pass of every setting in turn,
so that a machine whose speed drifts (a neighbour's load) slows all of them
alike. Each setting gets its median and interquartile range; each gets its
speed-up over the train form in eager mode, the median of the per-round
ratios. The Markdown table goes to stdout,
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
                        help='timed rounds (one pass of every form and '
                        'mode each)')
    parser.add_argument('--warmup', type=int, default=5,
                        help='untimed rounds before timing')
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


def phases_of(args):
    """``(name, batch, threads)`` of the timed phases: latency at batch 1,
    then throughput at ``--batch`` unless that is the same setting."""
    phases = [('latency', 1, args.threads)]
    if args.batch != 1 or args.batch_threads != args.threads:
        phases.append(('throughput', args.batch, args.batch_threads))
    return phases


def mode_name(compiled):
    return 'compiled' if compiled else 'eager'


def time_phase(target, models, settings, batch, threads, dtype, args,
               device, img_size, tick):
    """Seconds per pass of every setting at one batch size, side by side.

    Every setting first runs once on its own (compiling where asked); one
    whose first pass fails gets an error and the others go on.

    Args:
        models (dict): ``{form: model}``, prepared for the device and dtype.
        settings (list[tuple]): ``(form, compiled)`` pairs to time.

    Returns:
        dict: ``{(form, compiled): {'first_s', 'samples'} or {'error'}}``.
    """
    import torch
    from mmpartial.benchmark import time_side_by_side
    from mmpartial.benchmark.timing import synchronize

    torch.set_num_threads(threads)
    inputs = target.make_inputs(batch, img_size, device, dtype,
                                args.channels_last)
    if any(compiled for _, compiled in settings):
        # Fresh compilation per phase: Inductor bakes the thread count into
        # CPU kernels, and the batch differs between phases.
        torch._dynamo.reset()
    out, runs = {}, {}
    for key in settings:
        form, compiled = key
        try:
            run = target.runner(models[form], inputs, dtype,
                                compiled=compiled)
            start = time.perf_counter()
            run()  # compiles, allocates, picks kernels
            synchronize(device)
        except Exception as err:
            traceback.print_exc(file=sys.stderr)
            out[key] = dict(error=failure_reason(err))
            continue
        out[key] = dict(first_s=time.perf_counter() - start)
        runs[key] = run
    if not runs:
        return out
    try:
        samples = time_side_by_side(runs, args.repeats, args.warmup, device,
                                    on_run=tick)
    except Exception as err:
        traceback.print_exc(file=sys.stderr)
        return dict(out, **{key: dict(error=failure_reason(err))
                            for key in runs})
    for key, seconds in samples.items():
        out[key]['samples'] = seconds
    return out


def measurement(key, timings, args):
    """The latency and throughput of one setting from its phases' timings,
    or the error of the first phase that failed."""
    from mmpartial.benchmark import summarize

    latency = timings['latency'][key]
    batch = timings.get('throughput', timings['latency'])[key]
    for phase in (latency, batch):
        if 'error' in phase:
            return None, phase['error']
    lat, bat = summarize(latency['samples']), summarize(batch['samples'])
    return dict(
        latency=dict(batch=1, threads=args.threads, ms=in_ms(lat),
                     images_per_s=images_per_second(1, lat),
                     samples_ms=[s * 1e3 for s in latency['samples']]),
        throughput=dict(batch=args.batch, threads=args.batch_threads,
                        batch_ms=in_ms(bat),
                        images_per_s=images_per_second(args.batch, bat),
                        samples_ms=[s * 1e3 for s in batch['samples']]),
        compile_s=dict(latency=latency['first_s'],
                       throughput=timings['throughput'][key]['first_s']
                       if 'throughput' in timings else None)
        if key[1] else None), None


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


def result_row(target, form, form_info, dtype_name, compiled, timings,
               args):
    """One result row of a setting, or its error row."""
    row = dict(target=target.name, form=form, dtype=dtype_name,
               mode=mode_name(compiled), precision=target.precision)
    result, error = measurement((form, compiled), timings, args)
    if error is not None:
        return dict(row, status='error', reason=error)
    macs = form_info['macs']
    gflops, latency_gflops = achieved(result, form_info, target)
    return dict(
        row, status='ok', params=form_info['params'],
        macs=macs and macs['total'],
        macs_conv_linear_matmul=macs and macs['conv_linear_matmul'],
        **result, gflops=gflops, gflops_latency=latency_gflops)


def benchmark_target(target, args, device, img_size, progress):
    """Every form, dtype and mode of one target.

    Per dtype, all forms and modes are timed side by side (one pass of each
    in turn), so that their ratios do not depend on when each ran.

    Returns:
        tuple[dict, list[dict]]: The target's description (params and MACs
        per form) and its result rows.
    """
    import torch
    from mmpartial.benchmark import DTYPES, deploy_copy

    info = dict(name=target.name, description=target.description,
                mac_scope=target.mac_scope,
                compile_scope=target.compile_scope,
                precision=target.precision, forms={})
    rows, models = [], {}
    for form in args.form:
        model, reason = (target.model, None) if form == 'train' \
            else deploy_copy(target.model)
        if model is None:
            info['forms'][form] = dict(available=False, reason=reason)
            rows.append(not_run(target, form, 'n/a', reason))
            progress.note(f'{target.name} {form}: n/a ({reason})')
            continue
        info['forms'][form] = describe_form(target, model, img_size)
        models[form] = model
    modes = [False, True] if args.compile else [False]
    settings = [(form, compiled) for form in models for compiled in modes]
    labels = ', '.join(f'{form} {mode_name(compiled)}'
                       for form, compiled in settings)
    for dtype_name in args.dtype:
        dtype = DTYPES[dtype_name]
        typed = {form: target.prepare(model, device, dtype,
                                      args.channels_last)
                 for form, model in models.items()}
        timings = {}
        for phase, batch, threads in phases_of(args):
            progress.start(f'{target.name} {dtype_name}, {phase} at batch '
                           f'{batch} on {threads} thread(s): {labels}')
            with torch.no_grad():
                timings[phase] = time_phase(
                    target, typed, settings, batch, threads, dtype, args,
                    device, img_size,
                    lambda done, total, phase=phase: progress.tick(
                        phase, done, total))
            progress.finish(phase_text(timings[phase], batch))
        for form, compiled in settings:
            rows.append(result_row(target, form, info['forms'][form],
                                   dtype_name, compiled, timings, args))
        del typed
        release_memory(device)
    return info, rows


def phase_text(timing, batch):
    """One progress line: each setting's median, or its failure."""
    import numpy as np
    parts = []
    for (form, compiled), result in timing.items():
        label = f'{form} {mode_name(compiled)}'
        if 'error' in result:
            parts.append(f'{label} failed: {result["error"]}')
            continue
        seconds = float(np.median(result['samples']))
        parts.append(f'{label} {seconds * 1e3:.2f} ms' if batch == 1 else
                     f'{label} {batch / seconds:.1f} img/s')
    return '; '.join(parts)


def speedups(results):
    """Every setting's speed-up over the train form in eager mode.

    Per target and dtype: the median over rounds of the ratio of the two
    settings' times in the same round (they were timed side by side).
    """
    from mmpartial.benchmark import paired_speedup
    ok = [row for row in results if row['status'] == 'ok']
    out = []
    for base in ok:
        if (base['form'], base['mode']) != ('train', 'eager'):
            continue
        for row in ok:
            if row is base or (row['target'], row['dtype']) != (
                    base['target'], base['dtype']):
                continue
            out.append(dict(
                target=row['target'], dtype=row['dtype'], form=row['form'],
                mode=row['mode'], baseline='train eager',
                **{key: paired_speedup(base[key]['samples_ms'],
                                       row[key]['samples_ms'])
                   for key in ('latency', 'throughput')}))
    return out


def release_memory(device):
    import torch
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def count_steps(targets, args):
    """Progress steps: one per target, dtype and timed phase."""
    return len(targets) * len(args.dtype) * len(phases_of(args))


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
    report['speedups'] = speedups(report['results'])
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
