"""Devices, dtypes, timing loops and the matrix-multiply peak."""
import time

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {
    'fp32': torch.float32,
    'bf16': torch.bfloat16,
    'fp16': torch.float16,
}


class UnsupportedError(ValueError):
    """A device or dtype this machine cannot run."""


def resolve_device(name):
    """``torch.device`` of ``name`` (``'cpu'`` or ``'cuda'``), checked."""
    if name == 'cuda':
        if not torch.cuda.is_available():
            raise UnsupportedError(
                '--device cuda: no CUDA device is available to torch '
                f'{torch.__version__} on this machine (torch.version.cuda='
                f'{torch.version.cuda}); use --device cpu')
        return torch.device('cuda', torch.cuda.current_device())
    if name != 'cpu':
        raise UnsupportedError(f'unknown device {name!r}; use cpu or cuda')
    return torch.device('cpu')


def device_name(device):
    """A human name of ``device``: the GPU's name or the CPU model."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    from .report import cpu_model
    return cpu_model() or 'CPU'


def check_dtype(device, name):
    """Fail clearly unless ``device`` runs the model's layers in ``name``.

    Real support is probed rather than assumed: a tiny convolution, batch
    norm, layer norm, linear layer and matrix product in that dtype. (Half
    precision convolutions on CPU, say, depend on the torch build.)

    Raises:
        UnsupportedError: With the device and the failing operation's error.
    """
    if name not in DTYPES:
        raise UnsupportedError(f'unknown dtype {name!r}; choose from '
                               f'{list(DTYPES)}')
    dtype = DTYPES[name]
    where = f'{device.type} ({device_name(device)})'
    if device.type == 'cuda' and dtype is torch.bfloat16 \
            and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise UnsupportedError(f'--dtype bf16 is not supported on {where}: '
                               'the GPU has no native bfloat16')
    try:
        _probe_dtype(device, dtype)
    except (RuntimeError, NotImplementedError, TypeError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err) else ''
        raise UnsupportedError(
            f'--dtype {name} is not supported on {where}: a tiny '
            f'convolution/norm/linear in {dtype} fails with '
            f'{type(err).__name__}: {first_line}') from None


def _probe_dtype(device, dtype):
    """Run one small instance of every kind of layer PartialNet uses."""
    kw = dict(device=device, dtype=dtype)
    x = torch.randn(1, 8, 8, 8, **kw)
    x = F.conv2d(x, torch.randn(8, 8, 3, 3, **kw), padding=1)
    x = F.batch_norm(x, torch.zeros(8, **kw), torch.ones(8, **kw),
                     training=False)
    tokens = F.layer_norm(x.flatten(2).transpose(1, 2), (8, ))
    tokens = F.linear(tokens, torch.randn(8, 8, **kw))
    (tokens @ tokens.transpose(1, 2)).softmax(-1).sum().item()


def synchronize(device):
    """Wait for the device's queued work, so wall time covers all of it."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_side_by_side(runs, repeats, warmup, device, on_run=None):
    """Time several callables side by side: one pass of each per round.

    Every pass is timed alone, from an idle device to an idle device. The
    callables take turns (the order rotates from round to round), so a
    slow drift of the machine (a neighbour's load, clock changes) hits all
    of them alike: their ratios stay honest even where the absolute times
    wander, and round ``i`` of one pairs with round ``i`` of another.

    Args:
        runs (dict): ``{key: fn}``, each ``fn()`` one pass.
        repeats (int): Timed rounds.
        warmup (int): Untimed rounds first.
        device (torch.device): Synchronised around every pass.
        on_run (callable, optional): Called as ``on_run(done, total)``
            after every round, warm-up included (for a progress display).

    Returns:
        dict: ``{key: [seconds of round 0, round 1, ...]}``.
    """
    keys = list(runs)
    total = warmup + repeats
    report = on_run or (lambda done, total: None)
    for i in range(warmup):
        for key in keys:
            runs[key]()
        report(i + 1, total)
    synchronize(device)
    samples = {key: [] for key in keys}
    for i in range(repeats):
        shift = i % len(keys)
        for key in keys[shift:] + keys[:shift]:
            start = time.perf_counter()
            runs[key]()
            synchronize(device)
            samples[key].append(time.perf_counter() - start)
        report(warmup + i + 1, total)
    return samples


def paired_speedup(baseline, other):
    """Median over rounds of ``baseline[i] / other[i]`` (seconds per pass
    of two callables timed side by side, :func:`time_side_by_side`)."""
    ratios = np.asarray(baseline, np.float64) / np.asarray(other, np.float64)
    return float(np.median(ratios))


def summarize(samples):
    """Median, quartiles and range of ``samples`` (any unit)."""
    values = np.asarray(samples, dtype=np.float64)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return dict(median=float(median), q1=float(q1), q3=float(q3),
                min=float(values.min()), max=float(values.max()),
                n=int(values.size))


def matmul_peak(device, threads, max_size, min_seconds=0.1):
    """The best float32 ``torch.mm`` rate of square matrices, in GFLOP/s.

    Square products of sizes ``max_size / 4``, ``max_size / 2`` and
    ``max_size`` are each run until they have taken ``min_seconds`` (and at
    least three times); the fastest single run of any size gives the peak,
    ``2 * n**3 / seconds``. Small sizes are there because caches and thread
    start-up can favour them on small machines. On CUDA, TF32 follows
    ``torch.backends.cuda.matmul.allow_tf32`` (off by default), so the peak
    is a true float32 one.

    Args:
        device (torch.device): Where to multiply.
        threads (int): ``torch.set_num_threads`` for the measurement.
        max_size (int): The largest matrix side.
        min_seconds (float): Time spent per size, at least.

    Returns:
        dict: ``gflops`` (the peak), ``size`` (the side that reached it),
        ``threads`` and ``by_size`` ({side: best GFLOP/s}).
    """
    torch.set_num_threads(threads)
    sizes = sorted({max(16, max_size // 4), max(16, max_size // 2),
                    max(16, max_size)})
    by_size = {}
    for n in sizes:
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)
        out = torch.empty(n, n, device=device)
        torch.mm(a, b, out=out)  # warm-up: allocation, kernel selection
        synchronize(device)
        best, spent, runs = float('inf'), 0., 0
        while runs < 3 or spent < min_seconds:
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            synchronize(device)
            elapsed = time.perf_counter() - start
            best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
        by_size[n] = 2 * n**3 / best / 1e9
    size = max(by_size, key=by_size.get)
    return dict(gflops=by_size[size], size=size, threads=threads,
                dtype='fp32', by_size=by_size)
