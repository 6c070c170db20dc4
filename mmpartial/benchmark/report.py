"""The machine's description and the Markdown report of a benchmark run."""
import os
import platform

import torch

DASH = '–'


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or None where absent."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() in ('model name', 'Model', 'Processor') \
                        and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info(device):
    """What the numbers were measured on: device, CPU, software versions."""
    from .timing import device_name
    info = dict(
        device_type=device.type,
        device_name=device_name(device),
        cpu_model=cpu_model(),
        logical_cpus=os.cpu_count(),
        # What this process may use (cgroups and affinity can restrict it).
        usable_cpus=len(os.sched_getaffinity(0))
        if hasattr(os, 'sched_getaffinity') else os.cpu_count(),
        torch_version=torch.__version__,
        torch_default_threads=torch.get_num_threads(),
        python_version=platform.python_version(),
        platform=platform.platform(),
    )
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        info.update(
            cuda_version=torch.version.cuda,
            cudnn_version=torch.backends.cudnn.version(),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
            matmul_fp32_precision=getattr(torch.backends.cuda.matmul,
                                          'fp32_precision', None),
            tf32_cudnn=torch.backends.cudnn.allow_tf32)
    return info


def _fmt(value, digits=2):
    if value is None:
        return DASH
    if abs(value) >= 100:
        return f'{value:.0f}'
    if abs(value) >= 10:
        return f'{value:.1f}'
    return f'{value:.{digits}f}'


def _spread(stats):
    """``median [q1, q3]`` of a summary."""
    return (f'{_fmt(stats["median"])} '
            f'[{_fmt(stats["q1"])}, {_fmt(stats["q3"])}]')


def _millions(value, scale):
    return DASH if value is None else f'{value / scale:.3f}'


def _row(result):
    """One table row of a result of tools/benchmark.py."""
    head = [result['target'], result['form'], result.get('dtype') or DASH,
            result.get('mode') or DASH]
    if result['status'] != 'ok':
        # The reason where the numbers would be, the rest dashes.
        return head + [f'{result["status"]}: {result["reason"]}'] + \
            [DASH] * 6
    fraction = result.get('peak_fraction')
    return head + [
        _millions(result['params'], 1e6),
        _millions(result['macs'], 1e9),
        _millions(result['macs_conv_linear_matmul'], 1e9),
        _spread(result['latency']['ms']),
        _spread(result['throughput']['images_per_s']),
        _fmt(result.get('gflops')),
        DASH if fraction is None else f'{100 * fraction:.1f}%',
    ]


def _table(rows, header):
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(str(c).replace('|', '/') for c in row) + ' |'
              for row in rows]
    return lines


def markdown_report(report):
    """The run as Markdown: settings, notes and one table row per result.

    Args:
        report (dict): What tools/benchmark.py writes with ``--json``.
    """
    settings, machine = report['settings'], report['machine']
    height, width = settings['img_size']
    batch = settings['batch']
    lines = [f'## PartialNet benchmark: {settings["source"]}', '']
    cpus = f'{machine["usable_cpus"]} usable of {machine["logical_cpus"]} ' \
        'logical CPUs'
    gpu = f'GPU {machine["device_name"]}; ' \
        if machine['device_type'] == 'cuda' else ''
    lines.append(f'- machine: {gpu}CPU {machine["cpu_model"]}, {cpus}; '
                 f'torch {machine["torch_version"]}')
    lines.append(
        f'- input: random {batch}x3x{height}x{width} batches, eval mode, no '
        f'grad; latency at batch 1 on {settings["latency_threads"]} '
        f'thread(s), throughput at batch {batch} on '
        f'{settings["throughput_threads"]} thread(s); '
        f'forms and modes timed side by side, {settings["warmup"]} warm-up '
        f'and {settings["repeats"]} timed rounds of one pass of each in '
        'turn; shown as median [25th, 75th percentile]'
        + ('; channels_last' if settings['channels_last'] else ''))
    peaks = ', '.join(
        f'{peak["gflops"]:.1f} GFLOP/s on {peak["threads"]} thread(s) '
        f'(torch.mm {peak["size"]}x{peak["size"]})'
        for peak in report['peak'])
    lines.append(f'- float32 matmul peak (best of a run before and one after '
                 f'the models): {peaks}')
    lines.append(
        '- GFLOP/s = 2 x MACs x images/s at the throughput setting; % of '
        'peak = of the float32 peak on the same threads'
        + ('; bf16/fp16 rows use the float32 peak too, so they can pass '
           '100%' if set(settings['dtypes']) - {'fp32'} else ''))
    lines.append(f'- MACs per image: {report["mac_counting"]}')
    for target in report['targets']:
        notes = [f'MACs count {target["mac_scope"]}']
        if settings['compile']:
            notes.append(f'torch.compile compiles {target["compile_scope"]}')
        if set(settings['dtypes']) - {'fp32'}:
            notes.append('bf16/fp16 under torch.autocast, float32 weights'
                         if target['precision'] == 'autocast' else
                         'bf16/fp16: weights and inputs cast to that dtype')
        notes += [f'{form} form MACs not counted ({info["macs_error"]})'
                  for form, info in target['forms'].items()
                  if info.get('macs_error')]
        lines.append(f'- {target["name"]}: {target["description"]}; '
                     + '; '.join(notes))
    lines.append('')
    header = ['model', 'form', 'dtype', 'mode', 'params (M)', 'GMACs',
              'GMACs conv/linear/matmul', 'latency b=1 (ms)',
              f'throughput b={batch} (img/s)', 'GFLOP/s', '% of peak']
    lines += _table([_row(r) for r in report['results']], header)
    if report.get('speedups'):
        lines += ['', *_speedup_table(report['speedups'], batch)]
    return '\n'.join(lines) + '\n'


def _speedup_table(speedups, batch):
    """Markdown lines: each setting's speed-up over train form, eager."""
    lines = ['Speed-up over the train form in eager mode (same weights and '
             'dtype; median over rounds of the per-round time ratio):', '']
    header = ['model', 'dtype', 'form', 'mode', 'latency b=1',
              f'throughput b={batch}']
    rows = [[s['target'], s['dtype'], s['form'], s['mode'],
             f'{s["latency"]:.2f}x', f'{s["throughput"]:.2f}x']
            for s in speedups]
    return lines + _table(rows, header)
