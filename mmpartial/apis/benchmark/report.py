"""The Markdown report of a benchmark run: settings, notes, the check
against the CPU, the table of results and the speed-ups."""

DASH = '–'


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


# Count units of the results table: (header, scale) of params and MACs; a
# single layer has thousands of parameters and millions of MACs.
UNITS = dict(model=(('params (M)', 1e6), ('GMACs', 1e9)),
             layers=(('params (K)', 1e3), ('MMACs', 1e6)))


def _row(result, with_memory, units=UNITS['model']):
    """The table row of one result of :func:`~.run.run_benchmark`."""
    head = [result['target'], result['form'], result.get('dtype') or DASH,
            result.get('mode') or DASH]
    if result['status'] != 'ok':
        # The reason where the numbers would be, the rest dashes.
        return head + [f'{result["status"]}: {result["reason"]}'] + \
            [DASH] * (4 + with_memory)
    peak = result['throughput'].get('peak_memory_mib')
    return head + [
        _millions(result['params'], units[0][1]),
        _millions(result['macs'], units[1][1]),
        _spread(result['latency']['ms']),
        _spread(result['throughput']['images_per_s']),
        _fmt(result.get('gflops')),
    ] + ([_fmt(peak)] if with_memory else [])


def _table(rows, header):
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(str(c).replace('|', '/') for c in row) + ' |'
              for row in rows]
    return lines


def markdown_report(report):
    """The run as Markdown: settings, notes and one table row per result.

    Args:
        report (dict): What :func:`~.run.run_benchmark` returns (and
            ``tools/benchmark.py`` writes with ``--json``).
    """
    settings, machine = report['settings'], report['machine']
    height, width = settings['img_size']
    batch = settings['batch']
    lines = [f'## PartialNet benchmark: {settings["source"]}', '']
    cpus = f'{machine["usable_cpus"]} usable of {machine["logical_cpus"]} ' \
        'logical CPUs'
    gpu = f'GPU {machine["device_name"]}; ' \
        if machine['device_type'] == 'cuda' else ''
    malloc = ', '.join(f'{key}={value}' for key, value in
                       machine.get('malloc', {}).items()) or 'defaults'
    lines.append(f'- machine: {gpu}CPU {machine["cpu_model"]}, {cpus}; '
                 f'torch {machine["torch_version"]}; glibc malloc: {malloc}')
    if settings.get('inference', True):
        lines += _inference_notes(report)
    if settings.get('train_step'):
        lines.append(
            f'- train step: forward, loss, backward and SGD step of the '
            f'train form in training mode, at batch {batch} on '
            f'{settings["batch_threads"]} thread(s), random '
            f'{height}x{width} images; eager and compiled side by side, '
            f'{settings["warmup"]} warm-up and {settings["repeats"]} timed '
            'rounds; bf16/fp16 as autocast (AMP) with float32 weights; '
            'step peak memory = the most a step holds beyond the weights '
            'and optimiser state (CUDA: max_memory_allocated; CPU: '
            'torch.profiler memory events), RSS growth = CPU peak resident '
            'set over the resident set before a step, process peak = CUDA '
            'allocated peak or CPU peak resident set')
    lines.append('')
    if report.get('agreement'):
        lines += [*_agreement_table(report['agreement']), '']
    if report['results']:
        layers = settings.get('kind') == 'layers'
        units = UNITS['layers' if layers else 'model']
        header = ['layer' if layers else 'model', 'form', 'dtype', 'mode',
                  units[0][0], units[1][0], 'latency b=1 (ms)',
                  f'throughput b={batch} (img/s)', 'GFLOP/s']
        # Measured on a GPU only (the CPU allocator keeps no peak).
        cuda = machine['device_type'] == 'cuda'
        if cuda:
            header.append(f'peak memory b={batch} (MiB)')
        lines += _table([_row(r, cuda, units) for r in report['results']],
                        header)
    if report.get('speedups'):
        lines += ['', *_speedup_table(report['speedups'], batch)]
    if report.get('train_step'):
        lines += ['', *_train_step_table(report['train_step'])]
    return '\n'.join(lines) + '\n'


def _inference_notes(report):
    """The settings lines of the inference measurements."""
    settings = report['settings']
    height, width = settings['img_size']
    batch = settings['batch']
    channels = (settings.get('layers') or [3])[0]
    lines = [
        f'- input: random {batch}x{channels}x{height}x{width} batches, eval '
        f'mode, no grad; latency at batch 1 on {settings["threads"]} '
        f'thread(s), throughput at batch {batch} on '
        f'{settings["batch_threads"]} thread(s); '
        f'forms and modes timed side by side, {settings["warmup"]} warm-up '
        f'and {settings["repeats"]} timed rounds of one pass of each in '
        'turn; shown as median [25th, 75th percentile]'
        + ('; channels_last' if settings['channels_last'] else '')]
    runtimes = [b for b in settings['backend']
                if b not in ('eager', 'compiled')]
    if runtimes:
        lines.append(
            f'- {", ".join(runtimes)}: the form exported to ONNX (float32, '
            'as tools/export_onnx.py writes it), checked against PyTorch, '
            'on the same thread counts; numpy in and out, inside the timing')
    lines.append(
        '- GFLOP/s = 2 x MACs x images/s at the throughput setting, where '
        'the MACs cover what is timed' + ('; peak memory: CUDA allocated '
                                          'peak of one pass' if
                                          report['machine']['device_type']
                                          == 'cuda' else ''))
    lines.append(f'- MACs per image: {report["mac_counting"]}')
    for target in report['targets']:
        notes = [f'MACs count {target["mac_scope"]}']
        if settings['compile']:
            options = settings.get('compile_options')
            with_options = f' with options {options}' if options else ''
            notes.append(f'torch.compile{with_options} compiles '
                         f'{target["compile_scope"]}')
        if set(settings['dtype']) - {'fp32'}:
            notes.append('bf16/fp16 under torch.autocast, float32 weights'
                         if target['precision'] == 'autocast' else
                         'bf16/fp16: weights and inputs cast to that dtype')
        notes += [f'{form} form MACs not counted ({info["macs_error"]})'
                  for form, info in target['forms'].items()
                  if info.get('macs_error')]
        lines.append(f'- {target["name"]}: {target["description"]}; '
                     + '; '.join(notes))
    return lines


def _train_step_table(rows):
    """Markdown lines: the train-step rows."""
    lines = ['Train step (forward, backward and optimiser step of the train '
             'form; median [25th, 75th percentile]):', '']
    header = ['model', 'dtype', 'mode', 'batch', 'threads', 'images/s',
              'step (ms)', 'step peak memory (MiB)',
              'RSS growth (MiB)', 'process peak (MiB)',
              'speed-up over eager']
    body = []
    for row in rows:
        head = [row['target'], row.get('dtype') or DASH,
                row.get('mode') or DASH]
        if row['status'] != 'ok':
            body.append(head + [f'{row["status"]}: {row["reason"]}'] +
                        [DASH] * 7)
            continue
        memory = row.get('memory') or {}
        speedup = row.get('speedup_over_eager')
        body.append(head + [
            row['batch'], row['threads'], _spread(row['images_per_s']),
            _spread(row['step_ms']), _fmt(memory.get('step_peak_mib')),
            _fmt(memory.get('rss_growth_mib')), _fmt(memory.get('peak_mib')),
            DASH if speedup is None else f'{speedup:.2f}x'])
    return lines + _table(body, header)


def _agreement_table(rows):
    """Markdown lines: the device against the CPU."""
    lines = ['On the device against the CPU (float32, no TF32; relative '
             'difference = largest absolute difference over the largest '
             'value):', '']
    header = ['model', 'form', 'outputs', 'input grad', 'param grads', 'ok']
    body = [[r['target'], r['form'], f'{r["outputs"]:.1e}',
             f'{r["input_grad"]:.1e}', f'{r["param_grads"]:.1e}',
             'yes' if r['ok'] else 'NO'] for r in rows]
    return lines + _table(body, header)


def _speedup_table(speedups, batch):
    """Markdown lines: each setting's speed-up over the train form in eager
    mode, and the deploy form's over the train form in the same mode."""
    lines = ['Speed-ups (same weights and dtype; median over rounds of the '
             'per-round time ratio):', '']
    header = ['model', 'dtype', 'form', 'mode', 'over', 'latency b=1',
              f'throughput b={batch}']
    rows = [[s['target'], s['dtype'], s['form'], s['mode'], s['baseline'],
             f'{s["latency"]:.2f}x', f'{s["throughput"]:.2f}x']
            for s in speedups]
    return lines + _table(rows, header)
