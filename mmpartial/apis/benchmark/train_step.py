"""Training speed: one optimiser step of the train form, and its memory.

A step is forward, loss, backward and an SGD (momentum) update of every
trainable parameter, on random images (and random labels for a
classifier), with the model in training mode. ``torch.compile`` compiles
the forward and loss (and so, through AOT autograd, the backward); the
optimiser update runs eagerly in both modes. bf16 and fp16 run as
automatic mixed precision: float32 weights under ``torch.autocast``, with
a gradient scaler for fp16 on CUDA.

Peak memory of a mode is measured on one more step of that mode alone:

- ``step_peak_mib``: the most memory the step itself holds at any time
  (activations, gradients, temporaries) beyond what was allocated before
  it (weights, optimiser state). CUDA: ``torch.cuda.max_memory_allocated``
  after a reset, minus ``memory_allocated`` before. CPU: the running sum
  of the CPU allocator's allocations and frees during the step, as
  ``torch.profiler`` (``profile_memory=True``) records them, at its
  highest; that step is not timed.
- ``peak_mib``: the device's whole peak: on CUDA the allocated peak, on
  CPU the process's peak resident set (``VmHWM``, reset through
  /proc/self/clear_refs before one more step; it includes the libraries),
  where /proc is there; and on CPU ``rss_growth_mib``, that peak over the
  resident set before the step, after returning freed heap memory to the
  system (``malloc_trim``): a second view of the step's own memory.
"""
import ctypes
import re
import sys
import time
import traceback

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from .device import DTYPES, release_memory, synchronize
from .timing import (failure_reason, images_per_second, in_ms, paired_speedup,
                     summarize, time_side_by_side)


class ClassifierLoss(nn.Module):
    """Cross-entropy of a classifier's logits on given labels."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images, labels):
        logits = self.model(images, mode='tensor')
        return F.cross_entropy(logits.float(), labels)


class FeatureLoss(nn.Module):
    """A stand-in loss for a backbone: the mean square of its outputs."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        return sum(out.float().square().mean() for out in self.model(images))


def loss_module(target, model, images):
    """The loss module of a target and its inputs, or why it has none.

    Returns:
        tuple[nn.Module | None, tuple, str | None]: Module, its inputs,
        or None, (), and the reason.
    """
    kind = target.train_loss
    if kind == 'cross_entropy':
        with torch.no_grad():
            classes = model(images[:1], mode='tensor').shape[-1]
        generator = torch.Generator().manual_seed(0)
        labels = torch.randint(classes, (images.shape[0], ),
                               generator=generator).to(images.device)
        return ClassifierLoss(model), (images, labels), None
    if kind == 'features':
        return FeatureLoss(model), (images, ), None
    return None, (), ('no train step: its loss needs annotated samples '
                      '(the backbone\'s train step is timed)')


def make_train_step(module, inputs, dtype, compiled, device,
                    compile_options=None):
    """A callable running one training step of ``module`` (a loss module
    in training mode) on ``inputs``; returns the loss. ``compile_options``
    go to ``torch.compile``."""
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    forward = torch.compile(module, options=compile_options) if compiled \
        else module
    amp = dtype is not torch.float32
    scaler = torch.amp.GradScaler('cuda') \
        if dtype is torch.float16 and device.type == 'cuda' else None

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            loss = forward(*inputs)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return loss

    return step


def _peak_rss_mib(reset=False):
    """The process's peak resident set (VmHWM) in MiB, reset first if
    asked, or None without /proc (not Linux)."""
    try:
        if reset:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')
        with open('/proc/self/status') as f:
            found = re.search(r'^VmHWM:\s+(\d+)\s+kB', f.read(), re.M)
    except OSError:
        return None
    return int(found.group(1)) / 1024 if found else None


def _cpu_step_peak(run):
    """The peak of live CPU allocations during ``run()``, in bytes, from
    the profiler's memory events."""
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        run()
    events = sorted((e for e in prof.profiler.kineto_results.events()
                     if e.name() == '[memory]'),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def peak_memory(run, device):
    """Peak memory of one ``run()`` (a training step), in MiB.

    Returns:
        dict: ``step_peak_mib``, ``peak_mib`` and ``method`` (see the
        module's docstring).
    """
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        return dict(step_peak_mib=(peak - before) / 2**20,
                    peak_mib=peak / 2**20,
                    method='torch.cuda.max_memory_allocated')
    step_peak = _cpu_step_peak(run)
    # Once more without the profiler: freed heap memory back to the system
    # first, so that the step's own pages show as growth of the peak.
    _release_free_heap()
    before = _rss_mib()
    _peak_rss_mib(reset=True)
    run()
    peak = _peak_rss_mib()
    return dict(step_peak_mib=step_peak / 2**20, peak_mib=peak,
                rss_growth_mib=None if peak is None or before is None
                else peak - before,
                method='torch.profiler memory events (step_peak_mib); '
                'peak resident set VmHWM (peak_mib) and its growth over '
                'VmRSS before the step, after malloc_trim (rss_growth_mib)')


def _rss_mib():
    try:
        with open('/proc/self/status') as f:
            found = re.search(r'^VmRSS:\s+(\d+)\s+kB', f.read(), re.M)
    except OSError:
        return None
    return int(found.group(1)) / 1024 if found else None


def _release_free_heap():
    """``malloc_trim(0)`` where the C library is glibc; else nothing."""
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def train_step_target(target, options, device, img_size, progress):
    """Training steps of the train form, eager and compiled side by side,
    per dtype (bf16/fp16 as AMP), at ``options.batch`` on
    ``options.batch_threads`` threads: rows with step times, images/s and
    peak memory (see :mod:`~.train_step`), or why it did not run."""
    if target.train_loss is None:
        _, _, reason = loss_module(target, None, None)
        return [dict(target=target.name, dtype=None, mode=None,
                     status='n/a', reason=reason)]
    modes = ['eager', 'compiled'] if options.compile else ['eager']
    out = []
    for dtype_name in options.dtype:
        torch.set_num_threads(options.batch_threads)
        torch._dynamo.reset()
        model = target.prepare(target.model, device, torch.float32,
                               options.channels_last).train()
        images, = target.make_inputs(options.batch, img_size, device,
                                     channels_last=options.channels_last)
        module, inputs, _ = loss_module(target, model, images)
        progress.start(f'{target.name} {dtype_name}, train step at batch '
                       f'{options.batch} on {options.batch_threads} '
                       'thread(s): ' + ', '.join(modes))
        steps, first, errors, samples = {}, {}, {}, {}
        for mode in modes:
            try:
                step = make_train_step(module, inputs, DTYPES[dtype_name],
                                       mode == 'compiled', device,
                                       options.compile_options)
                start = time.perf_counter()
                step()  # compiles, allocates
                synchronize(device)
                first[mode], steps[mode] = time.perf_counter() - start, step
            except Exception as err:
                traceback.print_exc(file=sys.stderr)
                errors[mode] = failure_reason(err)
        try:
            samples = time_side_by_side(
                steps, options.repeats, options.warmup, device,
                on_run=lambda done, total: progress.tick(
                    'train step', done, total)) if steps else {}
        except Exception as err:
            traceback.print_exc(file=sys.stderr)
            errors.update({mode: failure_reason(err) for mode in steps})
        rows = []
        for mode in modes:
            row = dict(target=target.name, form='train', dtype=dtype_name,
                       mode=mode, batch=options.batch,
                       threads=options.batch_threads)
            if mode not in samples:
                rows.append(dict(row, status='error',
                                 reason=errors.get(mode, 'not timed')))
                continue
            seconds = summarize(samples[mode])
            row.update(status='ok', step_ms=in_ms(seconds),
                       images_per_s=images_per_second(options.batch,
                                                      seconds),
                       samples_ms=[s * 1e3 for s in samples[mode]],
                       first_step_s=first[mode],
                       memory=peak_memory(steps[mode], device))
            if mode == 'compiled' and 'eager' in samples:
                row['speedup_over_eager'] = paired_speedup(
                    samples['eager'], samples['compiled'])
            rows.append(row)
        progress.finish('; '.join(
            f'{row["mode"]} ' + (f'{row["images_per_s"]["median"]:.1f} '
                                 'img/s' if row['status'] == 'ok' else
                                 f'failed: {row["reason"]}')
            for row in rows))
        out.extend(rows)
        del model, module, steps
        release_memory(device)
    return out
