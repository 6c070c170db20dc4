"""A whole benchmark run: build the targets, record the matrix multiplies
they make, measure the peak, time every setting side by side (and, with
``train_step``, training steps), measure the peak again, collect the
report."""
import dataclasses
import json
import os
import os.path as osp
import sys
import time
import traceback

import torch

from .counting import MAC_COUNTING, count_macs, count_params
from .devices import (DTYPES, check_dtype, release_memory, resolve_device,
                      synchronize)
from .forms import deploy_copy
from .machine import machine_info
from .peak import measure_peak, merge_peaks, nominal_peak, record_gemms
from .progress import Progress
from .results import (attach_peak_fractions, failure_reason, mode_name,
                      not_run, phase_text, result_row, speedups,
                      train_step_rows)
from .targets import DEFAULT_IMG_SIZE, build_targets
from .timing import time_side_by_side
from .train_step import loss_module, make_train_step, peak_memory


def phases_of(options):
    """``(name, batch, threads)`` of the timed phases: latency at batch 1,
    then throughput at ``batch`` unless that is the same setting."""
    phases = [('latency', 1, options.threads)]
    if options.batch != 1 or options.batch_threads != options.threads:
        phases.append(('throughput', options.batch, options.batch_threads))
    return phases


def time_phase(target, models, settings, batch, threads, dtype, options,
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
    torch.set_num_threads(threads)
    inputs = target.make_inputs(batch, img_size, device, dtype,
                                options.channels_last)
    if any(compiled for _, compiled in settings):
        # Fresh compilation per phase: Inductor bakes the thread count into
        # CPU kernels, and the batch differs between phases.
        torch._dynamo.reset()
    out, runs = {}, {}
    for key in settings:
        form, compiled = key
        try:
            run = target.runner(models[form], inputs, dtype,
                                compiled=compiled,
                                compile_options=options.compile_options)
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
        samples = time_side_by_side(runs, options.repeats, options.warmup,
                                    device, on_run=tick)
    except Exception as err:
        traceback.print_exc(file=sys.stderr)
        return dict(out, **{key: dict(error=failure_reason(err))
                            for key in runs})
    for key, seconds in samples.items():
        out[key]['samples'] = seconds
    return out


def describe_form(target, model, img_size):
    """Params and MACs of one form of a target (fp32, CPU, batch 1)."""
    info = dict(available=True, params=count_params(model))
    inputs = target.make_inputs(1, img_size, 'cpu')
    try:
        info['macs'] = count_macs(target.mac_module(model),
                                  target.mac_inputs(inputs))
    except Exception as err:  # tracing can fail on exotic models
        info['macs'] = None
        info['macs_error'] = f'{type(err).__name__}: {err}'
    return info


def prepare_target(target, options, img_size, progress):
    """The forms of one target and its description (params and MACs).

    Returns:
        tuple[dict, list[dict], dict]: The description, the rows of forms
        that are not available, and ``{form: model}`` of the others.
    """
    info = dict(name=target.name, description=target.description,
                mac_scope=target.mac_scope,
                compile_scope=target.compile_scope,
                precision=target.precision, forms={})
    rows, models = [], {}
    for form in options.form if options.inference else ['train']:
        model, reason = (target.model, None) if form == 'train' \
            else deploy_copy(target.model)
        if model is None:
            info['forms'][form] = dict(available=False, reason=reason)
            rows.append(not_run(target, form, 'n/a', reason))
            progress.note(f'{target.name} {form}: n/a ({reason})')
            continue
        info['forms'][form] = describe_form(target, model, img_size)
        models[form] = model
    return info, rows, models


def record_probes(target, models, options, device, img_size):
    """The float32 matrix-multiply calls of every form at every timed batch
    size (one eager forward each), by phase: what the peak measurement
    replays (every phase's calls on every thread count, so that the peak
    on a thread count is the machine's, not only that of one batch
    size)."""
    probes = {}
    for phase, batch, _ in phases_of(options):
        inputs = target.make_inputs(batch, img_size, device,
                                    channels_last=options.channels_last)
        for model in models.values():
            typed = target.prepare(model, device, torch.float32,
                                   options.channels_last)
            probes.setdefault(phase, []).extend(
                record_gemms(target.runner(typed, inputs)))
            del typed
    return probes


def benchmark_target(target, models, info, options, device, img_size,
                     progress):
    """Every form, dtype and mode of one target: its result rows.

    Per dtype, all forms and modes are timed side by side (one pass of each
    in turn), so that their ratios do not depend on when each ran.
    """
    rows = []
    modes = [False, True] if options.compile else [False]
    settings = [(form, compiled) for form in models for compiled in modes]
    labels = ', '.join(f'{form} {mode_name(compiled)}'
                       for form, compiled in settings)
    for dtype_name in options.dtype:
        dtype = DTYPES[dtype_name]
        typed = {form: target.prepare(model, device, dtype,
                                      options.channels_last)
                 for form, model in models.items()}
        timings = {}
        for phase, batch, threads in phases_of(options):
            progress.start(f'{target.name} {dtype_name}, {phase} at batch '
                           f'{batch} on {threads} thread(s): {labels}')
            with torch.no_grad():
                timings[phase] = time_phase(
                    target, typed, settings, batch, threads, dtype, options,
                    device, img_size,
                    lambda done, total, phase=phase: progress.tick(
                        phase, done, total))
            progress.finish(phase_text(timings[phase], batch))
        for form, compiled in settings:
            rows.append(result_row(target, form, info['forms'][form],
                                   dtype_name, compiled, timings, options))
        del typed
        release_memory(device)
    return rows


def train_step_target(target, options, device, img_size, progress):
    """Training steps of the train form, eager and compiled side by side,
    per dtype, at ``options.batch`` on ``options.batch_threads`` threads.

    Returns:
        list[dict]: ``{target, dtype, mode, status, ...}``: per mode the
        step times, images/s and peak memory (see
        :mod:`~.train_step`), or why it did not run.
    """
    if target.train_loss is None:
        _, _, reason = loss_module(target, None, None)
        return [dict(target=target.name, dtype=None, mode=None,
                     status='n/a', reason=reason)]
    modes = [False, True] if options.compile else [False]
    out = []
    for dtype_name in options.dtype:
        dtype = DTYPES[dtype_name]
        torch.set_num_threads(options.batch_threads)
        torch._dynamo.reset()
        model = target.prepare(target.model, device, torch.float32,
                               options.channels_last).train()
        images, = target.make_inputs(options.batch, img_size, device,
                                     channels_last=options.channels_last)
        module, inputs, _ = loss_module(target, model, images)
        progress.start(f'{target.name} {dtype_name}, train step at batch '
                       f'{options.batch} on {options.batch_threads} '
                       'thread(s): ' + ', '.join(map(mode_name, modes)))
        steps, first, errors = {}, {}, {}
        for compiled in modes:
            try:
                step = make_train_step(module, inputs, dtype, compiled,
                                       device, options.compile_options)
                start = time.perf_counter()
                step()  # compiles, allocates
                synchronize(device)
                first[compiled] = time.perf_counter() - start
                steps[compiled] = step
            except Exception as err:
                traceback.print_exc(file=sys.stderr)
                errors[compiled] = failure_reason(err)
        samples = {}
        if steps:
            try:
                samples = time_side_by_side(
                    steps, options.repeats, options.warmup, device,
                    on_run=lambda done, total: progress.tick(
                        'train step', done, total))
            except Exception as err:
                traceback.print_exc(file=sys.stderr)
                errors.update({k: failure_reason(err) for k in steps})
                samples = {}
        memory = {compiled: peak_memory(step, device)
                  for compiled, step in steps.items() if compiled in samples}
        rows = train_step_rows(target.name, dtype_name, modes, samples,
                               first, memory, errors, options)
        progress.finish('; '.join(
            f'{row["mode"]} ' + (f'{row["images_per_s"]["median"]:.1f} '
                                 'img/s' if row['status'] == 'ok' else
                                 f'failed: {row["reason"]}')
            for row in rows))
        out.extend(rows)
        del model, module, steps
        release_memory(device)
    return out


def measure_peaks(options, device, probes, progress, before=None):
    """The float32 peak at every thread count the benchmark uses: the best
    rate of the models' own matrix multiplies and of square products
    (see :mod:`~.peak`).

    Measured before and again after the models (pass the first result as
    ``before``): the better of the two stands, so that a neighbour's load
    during one of them does not lower the ceiling.
    """
    size = options.peak_size or (8192 if device.type == 'cuda' else 2048)
    peaks = {}
    count = sum(map(len, probes.values()))
    for threads in dict.fromkeys([options.threads, options.batch_threads]):
        progress.note(f'float32 peak on {threads} thread(s): {count} '
                      f'matrix multiplies of the models and squares up to '
                      f'{size} ...')
        peak = measure_peak(device, threads, probes, size,
                            min_seconds=options.peak_seconds)
        progress.note(f'{peak["gflops"]:.1f} GFLOP/s ({peak["best"]})')
        if before is not None:
            peak = merge_peaks(before[threads], peak)
        peaks[threads] = peak
    return peaks


def settings_of(options, kind, img_size, targets, device):
    """The report's ``settings``: what was measured and how."""
    source = (f'--arch {options.arch}' if options.arch else options.config) \
        + ' (' + '; '.join(t.description for t in targets) + ')'
    return dict(
        source=source, config=options.config, arch=options.arch, kind=kind,
        checkpoint=options.checkpoint,
        cfg_options=dict(options.cfg_options) if options.cfg_options
        else None,
        device=str(device), dtypes=options.dtype, forms=options.form,
        img_size=list(img_size), batch=options.batch,
        latency_threads=options.threads,
        throughput_threads=options.batch_threads,
        interop_threads=torch.get_num_interop_threads(),
        repeats=options.repeats, warmup=options.warmup,
        channels_last=options.channels_last, compile=options.compile,
        compile_options=dict(options.compile_options)
        if options.compile_options else None,
        inference=options.inference, train_step=options.train_step,
        cudnn_benchmark=torch.backends.cudnn.benchmark
        if device.type == 'cuda' else None,
        timing='wall clock per pass (device synchronised), eval mode, '
        'torch.no_grad, random inputs; data loading and preprocessing '
        'not timed')


def run_benchmark(options):
    """The whole benchmark of :class:`~.options.BenchmarkOptions`.

    Raises:
        BenchmarkError: A bad input (device, dtype, config, arch).

    Returns:
        dict: The report: ``settings``, ``machine``, ``mac_counting``,
        ``peak``, ``targets``, ``results`` and ``speedups`` (see
        :func:`~.report.markdown_report`).
    """
    progress = Progress(0, enabled=not options.quiet)
    # Device and dtypes first: a tiny probe, before seconds of building.
    device = resolve_device(options.device)
    for name in options.dtype:
        check_dtype(device, name)
    default_threads = torch.get_num_threads()
    threads = options.threads or default_threads
    options = dataclasses.replace(
        options, threads=threads,
        batch_threads=options.batch_threads or threads)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the best

    progress.note('building the model ...')
    targets, kind = build_targets(arch=options.arch, config=options.config,
                                  cfg_options=options.cfg_options,
                                  checkpoint=options.checkpoint)
    img_size = tuple(options.img_size or DEFAULT_IMG_SIZE[kind])
    if len(img_size) == 1:
        img_size = img_size * 2
    prepared, probes = [], {}
    for target in targets:
        info, rows, models = prepare_target(target, options, img_size,
                                            progress)
        prepared.append((target, info, rows, models))
        if options.inference:
            for phase, calls in record_probes(
                    target, models, options, device, img_size).items():
                probes.setdefault(phase, []).extend(calls)
    peaks = measure_peaks(options, device, probes, progress) \
        if options.inference else None
    progress.total = len(targets) * len(options.dtype) * (
        len(phases_of(options)) * options.inference + options.train_step)

    report = dict(settings=settings_of(options, kind, img_size, targets,
                                       device),
                  machine=machine_info(device), mac_counting=MAC_COUNTING,
                  peak=[], nominal_peak=None, targets=[], results=[],
                  speedups=[], train_step=[])
    report['machine']['torch_default_threads'] = default_threads
    for target, info, rows, models in prepared:
        report['targets'].append(info)
        if options.inference:
            rows = rows + benchmark_target(target, models, info, options,
                                           device, img_size, progress)
            report['results'].extend(rows)
        if options.train_step:
            report['train_step'].extend(train_step_target(
                target, options, device, img_size, progress))
    if options.inference:
        peaks = measure_peaks(options, device, probes, progress,
                              before=peaks)
        report['peak'] = list(peaks.values())
        attach_peak_fractions(report['results'], peaks)
        report['speedups'] = speedups(report['results'])
    if device.type == 'cpu':
        report['nominal_peak'] = [nominal_peak(threads) for threads in
                                  dict.fromkeys([options.threads,
                                                 options.batch_threads])]
    return report


def write_json(report, path):
    """Write the report as JSON (no NaN), creating the folder."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(report, f, indent=2, allow_nan=False)


def failed_rows(report):
    """The rows whose measurement failed (inference and train step)."""
    return [row for row in report['results'] + report.get('train_step', [])
            if row['status'] == 'error']
