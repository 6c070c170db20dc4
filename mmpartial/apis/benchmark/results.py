"""Result rows of a benchmark run: one per target, form, dtype and mode.

A row holds the parameters and MACs of its form, the latency and
throughput summaries (with every raw timing), the achieved GFLOP/s and its
fraction of the machine's matmul peak; or, where the setting could not run,
its status and the reason.
"""
import os
import os.path as osp
import traceback

import numpy as np

from .timing import images_per_second, in_ms, paired_speedup, summarize

# Where this package sits: tracebacks name files relative to it.
_SOURCE_ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def mode_name(compiled):
    return 'compiled' if compiled else 'eager'


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
        path = osp.relpath(path, _SOURCE_ROOT)
    return f'{text} (in {path}:{frames[-1].lineno})'


def measurement(key, timings, options):
    """The latency and throughput of one setting from its phases' timings,
    or the error of the first phase that failed.

    Args:
        key (tuple): ``(form, compiled)``.
        timings (dict): ``{phase: {key: {'first_s', 'samples'} or
            {'error'}}}`` with phases ``latency`` and maybe ``throughput``.
        options (BenchmarkOptions): With the thread counts resolved.

    Returns:
        tuple[dict | None, str | None]: The measurement, or the error.
    """
    latency = timings['latency'][key]
    batch = timings.get('throughput', timings['latency'])[key]
    for phase in (latency, batch):
        if 'error' in phase:
            return None, phase['error']
    lat, bat = summarize(latency['samples']), summarize(batch['samples'])
    return dict(
        latency=dict(batch=1, threads=options.threads, ms=in_ms(lat),
                     images_per_s=images_per_second(1, lat),
                     samples_ms=[s * 1e3 for s in latency['samples']]),
        throughput=dict(batch=options.batch, threads=options.batch_threads,
                        batch_ms=in_ms(bat),
                        images_per_s=images_per_second(options.batch, bat),
                        samples_ms=[s * 1e3 for s in batch['samples']]),
        compile_s=dict(latency=latency['first_s'],
                       throughput=timings['throughput'][key]['first_s']
                       if 'throughput' in timings else None)
        if key[1] else None), None


def achieved(result, form_info, target):
    """GFLOP/s at the throughput and latency settings: 2 x the MACs of the
    convolution, linear and matrix-multiply operators x images/s, the
    arithmetic that the peak (:mod:`~.peak`) bounds.

    None where the MACs are unknown or cover only part of what is timed
    (a detector's heads).
    """
    macs = form_info['macs']
    if macs is None or not target.macs_cover_model:
        return None, None
    return tuple(
        2 * macs['conv_linear_matmul'] *
        result[key]['images_per_s']['median'] / 1e9
        for key in ('throughput', 'latency'))


def not_run(target, form, status, reason):
    """The row of a form that was not timed, and why."""
    return dict(target=target.name, form=form, status=status, reason=reason)


def result_row(target, form, form_info, dtype_name, compiled, timings,
               options):
    """One result row of a setting, or its error row."""
    row = dict(target=target.name, form=form, dtype=dtype_name,
               mode=mode_name(compiled), precision=target.precision)
    result, error = measurement((form, compiled), timings, options)
    if error is not None:
        return dict(row, status='error', reason=error)
    macs = form_info['macs']
    gflops, latency_gflops = achieved(result, form_info, target)
    return dict(
        row, status='ok', params=form_info['params'],
        macs=macs and macs['total'],
        macs_conv_linear_matmul=macs and macs['conv_linear_matmul'],
        **result, gflops=gflops, gflops_latency=latency_gflops)


def attach_peak_fractions(results, peaks):
    """Each row's GFLOP/s as a fraction of the peak at its thread count,
    at the throughput setting (``peak_fraction``) and at batch 1
    (``peak_fraction_latency``)."""
    for row in results:
        if row['status'] != 'ok':
            continue
        peak = peaks[row['throughput']['threads']]['gflops']
        row['peak_gflops'] = peak
        row['peak_fraction'] = None if row['gflops'] is None \
            else row['gflops'] / peak
        latency_peak = peaks[row['latency']['threads']]['gflops']
        row['peak_gflops_latency'] = latency_peak
        row['peak_fraction_latency'] = None \
            if row['gflops_latency'] is None \
            else row['gflops_latency'] / latency_peak


def speedups(results):
    """Every setting's speed-up over the train form in eager mode
    (``baseline='train eager'``), and every deploy setting's over the train
    form in the same mode (``baseline='train compiled'`` for a compiled
    one: what folding buys under the compiler).

    Per target and dtype: the median over rounds of the ratio of the two
    settings' times in the same round (they were timed side by side).
    """
    ok = [row for row in results if row['status'] == 'ok']
    out = []

    def add(base, row):
        out.append(dict(
            target=row['target'], dtype=row['dtype'], form=row['form'],
            mode=row['mode'], baseline=f'{base["form"]} {base["mode"]}',
            **{key: paired_speedup(base[key]['samples_ms'],
                                   row[key]['samples_ms'])
               for key in ('latency', 'throughput')}))

    for base in ok:
        for row in ok:
            if row is base or (row['target'], row['dtype']) != (
                    base['target'], base['dtype']) or base['form'] != 'train':
                continue
            if base['mode'] == 'eager' or (row['form'] == 'deploy' and
                                           row['mode'] == base['mode']):
                add(base, row)
    return out


def phase_text(timing, batch):
    """One progress line: each setting's median, or its failure."""
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


def train_step_rows(target, dtype_name, modes, samples, first, memory,
                    errors, options):
    """The train-step rows of one target and dtype, one per mode."""
    rows = []
    for compiled in modes:
        row = dict(target=target, form='train', dtype=dtype_name,
                   mode=mode_name(compiled), batch=options.batch,
                   threads=options.batch_threads)
        if compiled in errors or compiled not in samples:
            rows.append(dict(row, status='error',
                             reason=errors.get(compiled, 'not timed')))
            continue
        seconds = summarize(samples[compiled])
        row.update(status='ok', step_ms=in_ms(seconds),
                   images_per_s=images_per_second(options.batch, seconds),
                   samples_ms=[s * 1e3 for s in samples[compiled]],
                   first_step_s=first[compiled],
                   memory=memory.get(compiled))
        if compiled and False in samples:
            row['speedup_over_eager'] = paired_speedup(samples[False],
                                                       samples[True])
        rows.append(row)
    return rows
