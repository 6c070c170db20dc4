"""A whole benchmark run: build the targets, check them against the CPU
where the device is a GPU, time every form and backend side by side (and,
with ``train_step``, training steps), collect the report."""
import dataclasses
import json
import os
import os.path as osp
import sys
import tempfile
import time
import traceback

import numpy as np
import torch

from ..counting import MAC_COUNTING, count_params
from .agreement import check_against_cpu
from .device import (DTYPES, check_dtype, machine_info, release_memory,
                     resolve_device, synchronize)
from .options import UnsupportedError
from .build import build_targets, deploy_copy
from .layers import build_layer_targets, layer_shape
from .runtimes import (RUNTIMES, TOLERANCE, RuntimeSession, check_graph,
                       export_graph, runtime_problem, runtime_runner)
from .targets import DEFAULT_IMG_SIZE
from .timing import (Progress, failure_reason, images_per_second, in_ms,
                     paired_speedup, summarize, time_side_by_side)
from .train_step import train_step_target


def phases_of(options):
    """``(name, batch, threads)`` of the timed phases: latency at batch 1,
    then throughput at ``batch`` unless that is the same setting."""
    phases = [('latency', 1, options.threads)]
    if options.batch != 1 or options.batch_threads != options.threads:
        phases.append(('throughput', options.batch, options.batch_threads))
    return phases


def _peak_mib(run, device):
    """The allocated peak of one more pass of ``run`` on a GPU, MiB."""
    if device.type != 'cuda':
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    run()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def time_phase(target, models, graphs, settings, batch, threads, dtype,
               options, device, img_size, tick):
    """Seconds per pass of every setting at one batch size, side by side.

    Every setting first runs once on its own (compiling, loading the
    graph); one that fails gets an error and the others go on.

    Args:
        models (dict): ``{form: model}``, prepared for the device and dtype.
        graphs (dict): ``{form: onnx file}`` for the runtimes.
        settings (list[tuple]): ``(form, backend)`` pairs to time.

    Returns:
        dict: ``{(form, backend): {'first_s', 'samples', 'peak_mib'} or
        {'error'}}``.
    """
    torch.set_num_threads(threads)
    inputs = target.make_inputs(batch, img_size, device, dtype,
                                options.channels_last)
    if any(backend == 'compiled' for _, backend in settings):
        # Fresh compilation per phase: Inductor bakes the thread count into
        # CPU kernels, and the batch differs between phases.
        torch._dynamo.reset()
    out, runs = {}, {}
    for key in settings:
        form, backend = key
        try:
            if backend in RUNTIMES:
                run = runtime_runner(
                    RuntimeSession(backend, graphs[form], threads, device),
                    inputs)
            else:
                run = target.runner(models[form], inputs, dtype,
                                    compiled=backend == 'compiled',
                                    compile_options=options.compile_options)
            start = time.perf_counter()
            run()  # compiles, allocates, picks kernels
            synchronize(device)
            out[key] = dict(first_s=time.perf_counter() - start,
                            peak_mib=_peak_mib(run, device))
            runs[key] = run
        except Exception as err:
            if not isinstance(err, UnsupportedError):
                traceback.print_exc(file=sys.stderr)
            out[key] = dict(error=failure_reason(err))
    if runs:
        try:
            samples = time_side_by_side(runs, options.repeats,
                                        options.warmup, device, on_run=tick)
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
    try:
        info['macs'] = target.count_macs(model, img_size)
    except Exception as err:  # tracing can fail on exotic models
        info.update(macs=None, macs_error=f'{type(err).__name__}: {err}')
    return info


def prepare_target(target, options, img_size, progress):
    """The forms of one target, and its description (params and MACs).

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
        if form == 'train':
            model, reason = target.model, None
        elif target.deploy_problem:
            model, reason = None, target.deploy_problem
        else:
            model, reason = deploy_copy(target.model)
        if model is None:
            info['forms'][form] = dict(available=False, reason=reason)
            rows.append(dict(target=target.name, form=form, status='n/a',
                             reason=reason))
            progress.note(f'{target.name} {form}: n/a ({reason})')
            continue
        info['forms'][form] = describe_form(target, model, img_size)
        models[form] = model
    return info, rows, models


def export_graphs(target, models, options, device, img_size, folder,
                  progress):
    """The ONNX graph of every form for the runtimes asked for, each
    checked against PyTorch on the CPU.

    Returns:
        tuple[dict, dict]: ``{form: file}``, and ``{(form, backend):
        reason}`` for what cannot run (not installed, not exportable, the
        runtime's refusal, outputs that differ).
    """
    graphs, problems = {}, {}
    wanted = [b for b in options.backend if b in RUNTIMES]
    for backend in wanted:
        problem = runtime_problem(backend, device) or \
            target.runtime_problem
        problems.update({(form, backend): problem for form in models
                         if problem})
    if all((form, b) in problems for form in models for b in wanted):
        return graphs, problems
    for form, model in models.items():
        module = target.tensor_module(model)
        images, = target.make_inputs(2, img_size, 'cpu')
        try:
            graphs[form], _ = export_graph(module, (images, ), folder,
                                           f'{target.name}-{form}')
        except Exception as err:
            traceback.print_exc(file=sys.stderr)
            problems.update({(form, b): f'export failed: '
                             f'{failure_reason(err)}' for b in wanted})
            continue
        for backend in wanted:
            if (form, backend) in problems:
                continue
            try:
                diff = check_graph(RuntimeSession(backend, graphs[form], 1,
                                                  torch.device('cpu')),
                                   module, images)
            except UnsupportedError as err:
                problems[form, backend] = str(err)
                continue
            progress.note(f'{target.name} {form} in {backend}: relative '
                          f'difference from PyTorch {diff:.1e}')
            if not diff <= TOLERANCE:
                problems[form, backend] = (
                    f'{backend} differs from PyTorch by {diff:.1e} '
                    f'(relative; at most {TOLERANCE:g} is timed)')
    return graphs, problems


def measurement(key, timings, options):
    """The latency and throughput of one setting from its phases'
    timings, or the error of the first phase that failed."""
    latency = timings['latency'][key]
    batch = timings.get('throughput', timings['latency'])[key]
    for phase in (latency, batch):
        if 'error' in phase:
            return None, phase['error']
    lat, bat = summarize(latency['samples']), summarize(batch['samples'])
    first = {phase: timing[key]['first_s'] for phase, timing in
             timings.items()}
    return dict(
        latency=dict(batch=1, threads=options.threads, ms=in_ms(lat),
                     images_per_s=images_per_second(1, lat),
                     samples_ms=[s * 1e3 for s in latency['samples']]),
        throughput=dict(batch=options.batch, threads=options.batch_threads,
                        batch_ms=in_ms(bat),
                        images_per_s=images_per_second(options.batch, bat),
                        samples_ms=[s * 1e3 for s in batch['samples']],
                        peak_memory_mib=batch['peak_mib']),
        first_pass_s=first), None


def result_row(target, form, form_info, dtype_name, backend, timings,
               options):
    """One result row of a setting, or its error row. GFLOP/s is 2 x the
    MACs x images/s, where the MACs cover everything that is timed."""
    row = dict(target=target.name, form=form, dtype=dtype_name,
               mode=backend, precision=target.precision)
    result, error = measurement((form, backend), timings, options)
    if error is not None:
        return dict(row, status='error', reason=error)
    macs = form_info['macs']
    gflops = None
    if macs is not None and target.macs_cover_model:
        gflops = 2 * macs['total'] * \
            result['throughput']['images_per_s']['median'] / 1e9
    return dict(row, status='ok', params=form_info['params'],
                macs=macs and macs['total'], **result, gflops=gflops)


def benchmark_target(target, models, info, options, device, img_size,
                     progress, folder):
    """Every form, dtype and backend of one target: its result rows.

    Per dtype, all forms and backends are timed side by side (one pass of
    each in turn), so that their ratios do not depend on when each ran.
    """
    rows = []
    graphs, problems = export_graphs(target, models, options, device,
                                     img_size, folder, progress)
    for dtype_name in options.dtype:
        dtype = DTYPES[dtype_name]
        # One row per form and backend, in that order: n/a ones say why.
        out = {key: dict(target=target.name, form=key[0], dtype=dtype_name,
                         mode=key[1], status='n/a', reason=reason)
               for key, reason in problems.items()}
        out.update({(form, backend): dict(
            target=target.name, form=form, dtype=dtype_name, mode=backend,
            status='n/a', reason='the runtimes run the float32 graph')
            for form in models for backend in options.backend
            if backend in RUNTIMES and dtype_name != 'fp32'})
        settings = [(form, backend) for form in models
                    for backend in options.backend
                    if (form, backend) not in out]
        if settings:
            typed = {form: target.prepare(model, device, dtype,
                                          options.channels_last)
                     for form, model in models.items()}
            labels = ', '.join(f'{form} {backend}'
                               for form, backend in settings)
            timings = {}
            for phase, batch, threads in phases_of(options):
                progress.start(f'{target.name} {dtype_name}, {phase} at '
                               f'batch {batch} on {threads} thread(s): '
                               f'{labels}')
                with torch.no_grad():
                    timings[phase] = time_phase(
                        target, typed, graphs, settings, batch, threads,
                        dtype, options, device, img_size,
                        lambda done, total, phase=phase: progress.tick(
                            phase, done, total))
                progress.finish(phase_text(timings[phase], batch))
            out.update({(form, backend): result_row(
                target, form, info['forms'][form], dtype_name, backend,
                timings, options) for form, backend in settings})
            del typed
            release_memory(device)
        rows += [out[form, backend] for form in models
                 for backend in options.backend]
    return rows


def phase_text(timing, batch):
    """One progress line: each setting's median, or its failure."""
    parts = []
    for (form, backend), result in timing.items():
        if 'error' in result:
            parts.append(f'{form} {backend} failed: {result["error"]}')
            continue
        seconds = float(np.median(result['samples']))
        parts.append(f'{form} {backend} {seconds * 1e3:.2f} ms' if batch == 1
                     else f'{form} {backend} {batch / seconds:.1f} img/s')
    return '; '.join(parts)


def speedups(results):
    """Every setting's speed-up over the train form in eager mode, and the
    deploy form's over the train form on the same backend (what folding
    buys under the compiler or in a runtime).

    Per target and dtype: the median over rounds of the ratio of the two
    settings' times in the same round (they were timed side by side).
    """
    ok = [row for row in results if row['status'] == 'ok']
    out = []
    for base in ok:
        for row in ok:
            if row is base or base['form'] != 'train' or (
                    row['target'], row['dtype']) != (base['target'],
                                                     base['dtype']):
                continue
            if base['mode'] == 'eager' or (row['form'] == 'deploy' and
                                           row['mode'] == base['mode']):
                out.append(dict(
                    target=row['target'], dtype=row['dtype'],
                    form=row['form'], mode=row['mode'],
                    baseline=f'{base["form"]} {base["mode"]}',
                    **{key: paired_speedup(base[key]['samples_ms'],
                                           row[key]['samples_ms'])
                       for key in ('latency', 'throughput')}))
    return out


def run_benchmark(options):
    """The whole benchmark of :class:`~.options.BenchmarkOptions` (checked
    by :func:`~.options.options_problem`).

    Raises:
        BenchmarkError: A bad input (device, dtype, config, arch).

    Returns:
        dict: The report: ``settings``, ``machine``, ``mac_counting``,
        ``agreement``, ``targets``, ``results``, ``speedups`` and
        ``train_step`` (see :func:`~.report.markdown_report`).
    """
    progress = Progress(enabled=not options.quiet)
    # Device and dtypes first: a tiny probe, before seconds of building.
    device = resolve_device(options.device)
    for name in options.dtype:
        check_dtype(device, name)
    default_threads = torch.get_num_threads()
    threads = options.threads or default_threads
    options = dataclasses.replace(
        options, threads=threads,
        batch_threads=options.batch_threads or threads)

    progress.note('building the model ...')
    if options.layers:
        channels, height, width = layer_shape(options.layers)
        targets = build_layer_targets(options.layers, options.layer_kinds)
        kind, img_size = 'layers', (height, width)
        source = f'layer profile, {channels} channels at {height}x{width}'
    else:
        targets, kind = build_targets(
            arch=options.arch, config=options.config,
            cfg_options=options.cfg_options, checkpoint=options.checkpoint)
        img_size = tuple(options.img_size or DEFAULT_IMG_SIZE[kind])
        img_size = img_size * 2 if len(img_size) == 1 else img_size
        source = (f'--arch {options.arch}' if options.arch else
                  options.config) + ' (' + '; '.join(
                      t.description for t in targets) + ')'
    prepared = [(target, *prepare_target(target, options, img_size,
                                         progress)) for target in targets]
    progress.total = len(targets) * len(options.dtype) * (
        len(phases_of(options)) * options.inference + options.train_step)
    report = dict(
        settings=dict(
            source=source, kind=kind, img_size=list(img_size),
            **{key: value for key, value in dataclasses.asdict(
                options).items() if key not in ('img_size', 'quiet')},
            interop_threads=torch.get_num_interop_threads()),
        machine=dict(machine_info(device),
                     torch_default_threads=default_threads),
        mac_counting=MAC_COUNTING, agreement=[], targets=[], results=[],
        speedups=[], train_step=[])
    with tempfile.TemporaryDirectory(prefix='mmpartial-bench-') as folder:
        for target, info, rows, models in prepared:
            report['targets'].append(info)
            if device.type == 'cuda':
                progress.note(f'{target.name}: CUDA against the CPU ...')
                report['agreement'] += check_against_cpu(target, models,
                                                         device, img_size)
            if options.inference:
                report['results'] += rows + benchmark_target(
                    target, models, info, options, device, img_size,
                    progress, folder)
            if options.train_step:
                report['train_step'] += train_step_target(
                    target, options, device, img_size, progress)
    report['speedups'] = speedups(report['results'])
    return report


def write_json(report, path):
    """Write the report as JSON (no NaN), creating the folder."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(report, f, indent=2, allow_nan=False)


def failed_rows(report):
    """The rows whose measurement failed (inference, train step and the
    check against the CPU)."""
    return [row for row in report['results'] + report['train_step']
            if row['status'] == 'error'] + [
                row for row in report['agreement'] if not row['ok']]
