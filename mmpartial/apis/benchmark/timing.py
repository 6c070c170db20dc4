"""Timing loops, their summaries, progress lines and failure reasons."""
import os
import os.path as osp
import sys
import time
import traceback

import numpy as np

from .device import synchronize


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


def images_per_second(batch, seconds):
    """Summary of images/s from a :func:`summarize` of seconds per batch.

    The rate is monotone decreasing in the time, so quantiles map onto
    quantiles with the ends swapped.
    """
    return dict(median=batch / seconds['median'], q1=batch / seconds['q3'],
                q3=batch / seconds['q1'], min=batch / seconds['max'],
                max=batch / seconds['min'], n=seconds['n'])


def in_ms(seconds):
    """A :func:`summarize` of seconds in milliseconds."""
    return {k: v * 1e3 if k != 'n' else v for k, v in seconds.items()}


# Where this package sits: tracebacks name files relative to it.
_SOURCE_ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


class Progress:
    """Numbered progress lines on stderr, one per step and its result."""

    def __init__(self, enabled=True):
        self.total, self.enabled, self.done = 0, enabled, 0
        self.started = self.step_started = time.perf_counter()
        self.label = ''

    def note(self, text):
        if self.enabled:
            print(f'[benchmark] {text}', file=sys.stderr, flush=True)

    def start(self, label):
        self.done += 1
        self.label, self.step_started = label, time.perf_counter()
        self.note(f'[{self.done}/{self.total}] {label} ...')

    def tick(self, phase, done, total):
        """Count the rounds of a measurement in place, on a terminal."""
        if self.enabled and sys.stderr.isatty():
            print(f'\r[benchmark]     {phase}: run {done}/{total}',
                  end='\n' if done == total else '', file=sys.stderr,
                  flush=True)

    def finish(self, text):
        now = time.perf_counter()
        self.note(f'[{self.done}/{self.total}] {self.label}: {text} '
                  f'({now - self.step_started:.1f} s, '
                  f'{now - self.started:.0f} s in all)')


def failure_reason(err):
    """One line: the error and the file that raised it (where it failed
    matters as much as what: "expected scalar type Float" from mmcv's NMS
    says the post-processing needs float32)."""
    message = str(err).strip().splitlines()[0] if str(err).strip() else ''
    text = f'{type(err).__name__}: {message}'[:300]
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return text
    path = frames[-1].filename
    if 'site-packages' + os.sep in path:  # mmcv/ops/nms.py, not a venv's
        path = path.split('site-packages' + os.sep)[-1]
    elif osp.isabs(path):
        path = osp.relpath(path, _SOURCE_ROOT)
    return f'{text} (in {path}:{frames[-1].lineno})'
