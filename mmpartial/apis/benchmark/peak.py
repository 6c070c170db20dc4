"""The machine's float32 peak: a ceiling that no model can exceed.

A model's arithmetic rate, ``2 x MACs / seconds`` with the MACs of its
convolution, linear and matrix-multiply operators, is a weighted average
of the rates of those operators (slowed down further by everything else it
runs). So the best rate of any single such operator, timed alone on warm
caches, bounds it from above, provided that every operator the model runs
is among the ones timed. The peak here is therefore the best of

* every matrix-multiply-like call the model itself makes (``mm``,
  ``addmm``, ``bmm``, ``baddbmm`` and ``convolution`` with the model's own
  shapes, strides, memory formats and parameters, recorded during one eager
  forward of each form at each batch size the benchmark times), replayed
  through the same operators and so the same oneDNN / BLAS / cuDNN paths;
* square ``torch.mm`` products of growing size (where BLAS is at its best).

Each probe runs until it has taken ``min_seconds`` and its fastest single
run counts. For reference :func:`nominal_peak` derives the FMA rate from
the CPU's vector width and clock (an estimate: the number of FMA units per
core is not visible to software and is assumed).
"""
import math
import os
import re
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .devices import synchronize

aten = torch.ops.aten
_MATMUL_OPS = {
    aten.mm.default: 'mm',
    aten.addmm.default: 'addmm',
    aten.bmm.default: 'bmm',
    aten.baddbmm.default: 'baddbmm',
    aten.convolution.default: 'convolution',
}


def call_flops(op, args, out):
    """Floating-point operations (2 per multiply-add) of one call."""
    if op in ('mm', 'addmm'):
        a, b = args[-2:] if op == 'mm' else args[1:3]
        return 2 * a.shape[0] * a.shape[1] * b.shape[1]
    if op in ('bmm', 'baddbmm'):
        a, b = args[:2] if op == 'bmm' else args[1:3]
        return 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    # convolution: weight (out, in / groups, *kernel); transposed
    # (in, out / groups, *kernel), every input element meets a kernel.
    weight, transposed = args[1], args[6]
    per_element = weight.shape[1] * math.prod(weight.shape[2:])
    return 2 * (args[0] if transposed else out).numel() * per_element


def _spec(value):
    """A replayable description of one argument."""
    if isinstance(value, torch.Tensor):
        return ('tensor', tuple(value.shape), tuple(value.stride()),
                value.dtype, value.device.type)
    if isinstance(value, (list, tuple)):
        return ('seq', tuple(_spec(v) for v in value))
    return ('value', value)


def _make(spec, device):
    kind = spec[0]
    if kind == 'tensor':
        _, shape, stride, dtype, _ = spec
        tensor = torch.empty_strided(shape, stride, dtype=dtype,
                                     device=device)
        return tensor.normal_() if dtype.is_floating_point else tensor.zero_()
    if kind == 'seq':
        return [_make(s, device) for s in spec[1]]
    return spec[1]


class GemmRecorder(TorchDispatchMode):
    """Record the matrix-multiply-like calls of whatever runs inside.

    ``calls`` maps a replayable key (operator and argument layouts) to
    ``(operator name, flops)``; repeated calls of one shape count once.
    """

    def __init__(self):
        super().__init__()
        self.calls = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        op = _MATMUL_OPS.get(func)
        if op is not None and not kwargs and all(
                a.dtype == torch.float32 for a in args
                if isinstance(a, torch.Tensor)):
            key = (op, tuple(_spec(a) for a in args))
            if key not in self.calls:
                self.calls[key] = (op, call_flops(op, args, out))
        return out


def record_gemms(run):
    """The matrix-multiply-like calls of ``run()`` (a forward pass), each
    as ``{'key', 'op', 'flops'}``."""
    recorder = GemmRecorder()
    with torch.no_grad(), recorder:
        run()
    return [dict(key=key, op=op, flops=flops)
            for key, (op, flops) in recorder.calls.items()]


def _replayer(key, device):
    op, specs = key
    func = next(f for f, name in _MATMUL_OPS.items() if name == op)
    args = [_make(spec, device) for spec in specs]
    return lambda: func(*args)


def square_probes(max_size):
    """``torch.mm`` of square float32 matrices up to ``max_size``."""
    sizes = sorted({max(16, max_size // 4), max(16, max_size // 2),
                    max(16, max_size)})
    probes = []
    for n in sizes:
        matrix = ('tensor', (n, n), (n, 1), torch.float32, None)
        probes.append(dict(key=('mm', (matrix, matrix)), op='mm',
                           flops=2 * n**3, label=f'torch.mm {n}x{n}x{n}'))
    return probes


def describe_probe(probe):
    """A short label: the operator and its operand shapes."""
    if 'label' in probe:
        return probe['label']
    op, specs = probe['key']
    shapes = [spec[1] for spec in specs if spec[0] == 'tensor']
    return f'{op} ' + ' x '.join('x'.join(map(str, s)) for s in shapes)


def time_probe(probe, device, min_seconds=0.05, min_runs=3):
    """Best GFLOP/s of one probe: its fastest single run after a warm-up,
    running until ``min_seconds`` are spent and at least ``min_runs``."""
    run = _replayer(probe['key'], device)
    with torch.no_grad():
        run()  # allocation, kernel selection
        synchronize(device)
        best, spent, runs = float('inf'), 0., 0
        while runs < min_runs or spent < min_seconds:
            start = time.perf_counter()
            run()
            synchronize(device)
            elapsed = time.perf_counter() - start
            best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
    return probe['flops'] / best / 1e9


def measure_peak(device, threads, probes, max_size, min_seconds=0.05,
                 max_probes=24):
    """The float32 peak on ``threads`` threads: the best rate of any probe.

    Args:
        device (torch.device): Where to run.
        threads (int): ``torch.set_num_threads`` for the measurement.
        probes (list[dict] | dict[str, list[dict]]): Recorded calls
            (:func:`record_gemms`), or groups of them (e.g. one per batch
            size); of each group the ``max_probes`` with the most flops
            are timed.
        max_size (int): Largest side of the square products.
        min_seconds (float): Time spent per probe, at least.

    Returns:
        dict: ``gflops`` (the peak), ``best`` (the probe that reached it),
        ``threads``, ``dtype`` and ``probes`` (each probe's label, flops
        and best GFLOP/s, so that the peak can be checked against them).
    """
    torch.set_num_threads(threads)
    groups = probes.values() if isinstance(probes, dict) else [probes]
    chosen = {}
    for group in groups:
        unique = {probe['key']: probe for probe in group}
        for probe in sorted(unique.values(),
                            key=lambda p: -p['flops'])[:max_probes]:
            chosen[probe['key']] = probe
    chosen = list(chosen.values())
    timed = []
    for probe in chosen + square_probes(max_size):
        gflops = time_probe(probe, device, min_seconds)
        timed.append(dict(label=describe_probe(probe), op=probe['op'],
                          flops=probe['flops'], gflops=gflops,
                          source='square' if 'label' in probe else 'model'))
    best = max(timed, key=lambda p: p['gflops'])
    return dict(gflops=best['gflops'], best=best['label'], threads=threads,
                dtype='fp32', probes=timed)


def merge_peaks(before, after):
    """The better of two measurements of the same peak (a neighbour's load
    can only slow a probe down), with both runs' figures kept."""
    best = max(before, after, key=lambda p: p['gflops'])
    probes = {}
    for probe in before['probes'] + after['probes']:
        key = probe['label']
        if key not in probes or probe['gflops'] > probes[key]['gflops']:
            probes[key] = probe
    return dict(best, probes=list(probes.values()),
                runs_gflops=[before['gflops'], after['gflops']])


def _lscpu_flags():
    try:
        with open('/proc/cpuinfo') as f:
            text = f.read()
    except OSError:
        return set(), None
    flags = re.search(r'^flags\s*:(.*)$', text, re.M)
    mhz = re.findall(r'^cpu MHz\s*:\s*([\d.]+)', text, re.M)
    return (set(flags.group(1).split()) if flags else set(),
            max(map(float, mhz)) if mhz else None)


def nominal_peak(threads, fma_units=2):
    """The FMA bound from the CPU's vector width and clock, an estimate.

    ``threads x fma_units x lanes x 2 x GHz``: ``lanes`` float32 lanes of
    the widest vector extension in the CPU flags (AVX-512: 16, AVX/AVX2: 8,
    SSE or none: 4), 2 flops per fused multiply-add (FMA flag), the clock
    /proc/cpuinfo reports (in a VM often the nominal one, not the turbo
    clock). The FMA units per core are not visible to software: 2 is
    assumed (Intel server cores with two 512-bit units; AMD Zen 4 has two
    256-bit units, so its true bound is half of this for AVX-512).

    Returns:
        dict | None: ``gflops`` and what it was derived from; None where
        /proc/cpuinfo is not there.
    """
    flags, mhz = _lscpu_flags()
    if not flags or not mhz:
        return None
    lanes = 16 if 'avx512f' in flags else 8 if 'avx' in flags else 4
    flops_per_fma = 2 if 'fma' in flags or 'avx512f' in flags else 1
    gflops = threads * fma_units * lanes * flops_per_fma * mhz / 1e3
    return dict(gflops=gflops, threads=threads, fma_units=fma_units,
                lanes=lanes, flops_per_fma=flops_per_fma, mhz=mhz,
                formula='threads x FMA units x float32 lanes x 2 x GHz',
                cpus=os.cpu_count())
