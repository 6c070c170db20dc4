"""GPU readiness of the PartialNet backbone: correctness, speed, memory.

Run by ``tools/gpu_check.sh`` on a machine with an NVIDIA GPU whose Python
has torch (and torchvision, timm) but none of mmcv, mmdet, mmpretrain: it
needs only ``mmpartial.models`` (torch and mmengine). Within a time
budget, most important first (correctness; then bf16 throughput and AMP
train steps of every arch; then fp16, then fp32); what does not fit is
listed as skipped:

1. **Correctness**: the forward and backward (input and parameter
   gradients) of T0 and T2, train and deploy form, on CUDA against the CPU
   in float32 (TF32 off), relative difference <= 1e-3 (largest absolute
   difference over the largest absolute value, per tensor).
2. **Throughput** of the classifier (backbone plus a head of
   ``PartialNetClsHead``'s shape) at batch 256, 224x224, channels_last, in
   bf16, fp16 and fp32 (weights and inputs cast; fp32 without TF32), train
   and deploy form, eager and ``torch.compile``, timed side by side (one
   pass of each setting per round, medians), with the peak memory of each.
3. **Training steps** with automatic mixed precision (bf16, and fp16 with
   a gradient scaler): forward, loss, backward and SGD step of the train
   form in training mode, eager and compiled, images/s and peak memory.

Figures go to a JSON file (written after every section) and a Markdown
table on stdout. Without CUDA it says so and exits with status 2; a
correctness failure exits with status 1.

``--device cpu`` runs the same steps on the CPU (against itself): for
testing this script, not for figures.
"""
import argparse
import copy
import json
import os
import os.path as osp
import platform
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmpartial.models import PartialNet
from .benchmark.timing import (images_per_second, paired_speedup, summarize,
                               time_side_by_side)
from .benchmark.train_step import make_train_step, peak_memory

DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16,
          'fp32': torch.float32}
TOLERANCE = 1e-3
#: The issue's goal: T0 bf16 deploy at batch 256 on an H200-class GPU.
GOAL = dict(arch='t0', dtype='bf16', form='deploy', images_per_s=11800)


class NoCudaError(RuntimeError):
    """No CUDA device is visible to torch."""


class Classifier(nn.Module):
    """PartialNet plus a head of ``PartialNetClsHead``'s shape (global
    pooling, bias-free 1x1 convolution to 1280, activation, linear to 1000)
    without mmpretrain."""

    def __init__(self, arch):
        super().__init__()
        self.backbone = PartialNet(arch)
        channels = self.backbone.channels[-1]
        act = PartialNet.arch_zoo[arch]['act_cfg']['type']
        self.conv = nn.Conv2d(channels, 1280, 1, bias=False)
        self.act = nn.GELU() if act == 'GELU' else nn.ReLU()
        self.fc = nn.Linear(1280, 1000)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.backbone(x)[-1], 1)
        return self.fc(self.act(self.conv(x)).flatten(1))


@torch.no_grad()
def randomize_norms(model, seed=0):
    """Non-trivial BN statistics and affines, LayerNorm affines and iRPE
    tables, so that the deploy form's folding is exercised."""
    gen = torch.Generator().manual_seed(seed)

    def fill(tensor, low, high):
        tensor.copy_(torch.rand(tensor.shape, generator=gen) * (high - low) +
                     low)

    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            fill(module.running_mean, -.5, .5)
            fill(module.running_var, .5, 2.)
            fill(module.weight, .5, 1.5)
            fill(module.bias, -.3, .3)
        elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
            fill(module.weight, .5, 1.5)
            fill(module.bias, -.3, .3)
    for name, param in model.named_parameters():
        if name.endswith('bias_table'):
            fill(param, -1., 1.)
    return model


def build_forms(arch, seed=0):
    """``{'train': model, 'deploy': model}``, float32 CPU, eval mode, the
    same weights."""
    torch.manual_seed(seed)
    model = Classifier(arch)
    model.backbone.init_weights()
    randomize_norms(model, seed).eval()
    deploy = copy.deepcopy(model)
    deploy.backbone.switch_to_deploy()
    return dict(train=model, deploy=deploy.eval())


def relative_difference(got, ref):
    got, ref = got.detach().double().cpu(), ref.detach().double().cpu()
    return float((got - ref).abs().max() / ref.abs().max().clamp(min=1e-12))


def forward_backward(model, x, weight):
    """Logits, and the gradients of ``(logits * weight).sum()`` with
    respect to the input and every parameter."""
    x = x.clone().requires_grad_(True)
    logits = model(x)
    (logits * weight).sum().backward()
    grads = {name: p.grad.detach().clone()
             for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return logits.detach(), x.grad.detach(), grads


def check_correctness(archs, device, batch=2, size=224):
    """Forward and backward on ``device`` against the CPU, float32.

    Returns:
        list[dict]: Per arch and form the worst relative differences of
        the logits, the input gradient and the parameter gradients, and
        ``ok``.
    """
    rows = []
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=gen)
    weight = torch.randn(batch, 1000, generator=gen)
    for arch in archs:
        for form, model in build_forms(arch).items():
            ref = forward_backward(model, x, weight)
            moved = copy.deepcopy(model).to(device)
            got = forward_backward(moved, x.to(device), weight.to(device))
            param = max(relative_difference(got[2][name], grad)
                        for name, grad in ref[2].items())
            row = dict(arch=arch, form=form, batch=batch,
                       logits=relative_difference(got[0], ref[0]),
                       input_grad=relative_difference(got[1], ref[1]),
                       param_grads=param,
                       params_with_grad=len(ref[2]))
            row['ok'] = max(row['logits'], row['input_grad'],
                            row['param_grads']) <= TOLERANCE
            rows.append(row)
            del moved
    return rows


def memory_of(run, device):
    """Peak memory of one ``run()`` in MiB (CUDA: allocated)."""
    if device.type != 'cuda':
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    run()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def measure_throughput(arch, dtype_name, args, device, forms):
    """Eager and compiled, train and deploy, side by side at one dtype.

    Returns:
        list[dict]: One row per setting (or its error).
    """
    dtype = DTYPES[dtype_name]
    torch._dynamo.reset()
    x = torch.randn(args.batch, 3, args.img_size, args.img_size,
                    device=device, dtype=dtype).contiguous(
                        memory_format=torch.channels_last)
    runs, first, errors, memory = {}, {}, {}, {}
    for form, model in forms.items():
        model = copy.deepcopy(model).to(device=device, dtype=dtype).to(
            memory_format=torch.channels_last)
        for compiled in ([False, True] if args.compile else [False]):
            key = (form, compiled)
            module = torch.compile(model) if compiled else model
            run = (lambda module=module: module(x))
            try:
                start = time.perf_counter()
                with torch.no_grad():
                    run()
                    synchronize(device)
                    first[key] = time.perf_counter() - start
                    memory[key] = memory_of(run, device)
                runs[key] = run
            except Exception as err:  # report, go on with the others
                errors[key] = f'{type(err).__name__}: {err}'[:300]
    samples = {}
    if runs:
        with torch.no_grad():
            samples = time_side_by_side(runs, args.repeats, args.warmup,
                                        device)
    rows = []
    for key in list(runs) + list(errors):
        form, compiled = key
        row = dict(arch=arch, dtype=dtype_name, form=form,
                   mode='compiled' if compiled else 'eager',
                   batch=args.batch, channels_last=True)
        if key in errors:
            rows.append(dict(row, status='error', reason=errors[key]))
            continue
        seconds = summarize(samples[key])
        row.update(status='ok',
                   images_per_s=images_per_second(args.batch, seconds),
                   batch_ms={k: v * 1e3 if k != 'n' else v
                             for k, v in seconds.items()},
                   samples_ms=[s * 1e3 for s in samples[key]],
                   first_pass_s=first[key], peak_memory_mib=memory[key])
        base = ('train', False)
        if key != base and base in samples:
            row['speedup_over_train_eager'] = paired_speedup(samples[base],
                                                             samples[key])
        rows.append(row)
    return rows


def measure_train_step(arch, dtype_name, args, device, model):
    """AMP training steps of the train form, eager and compiled."""
    dtype = DTYPES[dtype_name]
    torch._dynamo.reset()
    model = copy.deepcopy(model).to(device).to(
        memory_format=torch.channels_last).train()
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, args.img_size, args.img_size,
                         generator=gen).to(device).contiguous(
                             memory_format=torch.channels_last)
    labels = torch.randint(1000, (args.batch, ), generator=gen).to(device)
    module = _Loss(model)
    steps, errors = {}, {}
    for compiled in ([False, True] if args.compile else [False]):
        try:
            step = make_train_step(module, (images, labels), dtype, compiled,
                                   device)
            step()
            synchronize(device)
            steps[compiled] = step
        except Exception as err:
            errors[compiled] = f'{type(err).__name__}: {err}'[:300]
    samples = time_side_by_side(steps, args.repeats, args.warmup,
                                device) if steps else {}
    rows = []
    for compiled in list(steps) + list(errors):
        row = dict(arch=arch, dtype=dtype_name, amp=dtype is not torch.float32,
                   mode='compiled' if compiled else 'eager',
                   batch=args.batch)
        if compiled in errors:
            rows.append(dict(row, status='error', reason=errors[compiled]))
            continue
        seconds = summarize(samples[compiled])
        row.update(status='ok',
                   images_per_s=images_per_second(args.batch, seconds),
                   samples_ms=[s * 1e3 for s in samples[compiled]],
                   memory=peak_memory(steps[compiled], device))
        rows.append(row)
    return rows


class _Loss(nn.Module):

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images, labels):
        return F.cross_entropy(self.model(images).float(), labels)


def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def machine(device):
    info = dict(python=platform.python_version(),
                torch=torch.__version__, cuda=torch.version.cuda,
                cpus=os.cpu_count(), platform=platform.platform())
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=torch.cuda.get_device_name(device),
                    gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cudnn=torch.backends.cudnn.version(),
                    capability='.'.join(map(str, (props.major,
                                                  props.minor))))
    return info


def _fmt(value):
    if value is None:
        return '-'
    return f'{value:.0f}' if abs(value) >= 100 else f'{value:.3g}'


def markdown(report):
    """The report as Markdown tables."""
    where = report['machine'].get('gpu') or 'CPU (test run)'
    settings = report['settings']
    lines = [f'## PartialNet GPU check: {where}', '',
             f'torch {report["machine"]["torch"]}, CUDA '
             f'{report["machine"]["cuda"]}; batch {settings["batch"]}, '
             f'{settings["img_size"]}px, channels_last', '',
             '| arch | form | logits | input grad | param grads | ok |',
             '|---|---|---|---|---|---|']
    for row in report['correctness']:
        lines.append(f'| {row["arch"]} | {row["form"]} | {row["logits"]:.1e}'
                     f' | {row["input_grad"]:.1e} | {row["param_grads"]:.1e}'
                     f' | {"yes" if row["ok"] else "NO"} |')
    lines += ['', '| arch | dtype | form | mode | img/s | speed-up | '
              'peak memory (MiB) |', '|---|---|---|---|---|---|---|']
    for row in report['throughput']:
        if row['status'] != 'ok':
            lines.append(f'| {row["arch"]} | {row["dtype"]} | {row["form"]} '
                         f'| {row["mode"]} | error: {row["reason"]} | | |')
            continue
        speedup = row.get('speedup_over_train_eager')
        lines.append(
            f'| {row["arch"]} | {row["dtype"]} | {row["form"]} | '
            f'{row["mode"]} | {_fmt(row["images_per_s"]["median"])} | '
            f'{"-" if speedup is None else f"{speedup:.2f}x"} | '
            f'{_fmt(row["peak_memory_mib"])} |')
    lines += ['', '| arch | AMP dtype | mode | train img/s | step peak memory '
              '(MiB) |', '|---|---|---|---|---|']
    for row in report['train_step']:
        if row['status'] != 'ok':
            lines.append(f'| {row["arch"]} | {row["dtype"]} | {row["mode"]} '
                         f'| error: {row["reason"]} | |')
            continue
        lines.append(f'| {row["arch"]} | {row["dtype"]} | {row["mode"]} | '
                     f'{_fmt(row["images_per_s"]["median"])} | '
                     f'{_fmt(row["memory"]["step_peak_mib"])} |')
    if report.get('goal'):
        goal = report['goal']
        lines += ['', f'Goal {goal["arch"].upper()} {goal["dtype"]} '
                  f'{goal["form"]} >= {goal["images_per_s"]} img/s: best '
                  f'{_fmt(goal.get("measured"))} img/s '
                  f'({"met" if goal.get("met") else "not met"})']
    if report['skipped']:
        lines += ['', 'Skipped (time budget): ' + '; '.join(
            report['skipped'])]
    return '\n'.join(lines) + '\n'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='work_dirs/gpu_check.json',
                        help='JSON file for every figure')
    parser.add_argument('--archs', nargs='+', default=['t0', 't2'],
                        choices=list(PartialNet.arch_zoo))
    parser.add_argument('--dtypes', nargs='+', default=['bf16', 'fp16',
                                                        'fp32'],
                        choices=list(DTYPES))
    parser.add_argument('--amp-dtypes', nargs='+', default=['bf16', 'fp16'],
                        choices=['bf16', 'fp16'])
    parser.add_argument('--batch', type=int, default=256)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--no-compile', dest='compile', action='store_false')
    parser.add_argument('--budget', type=float, default=420,
                        help='seconds; sections that would start later are '
                        'skipped (default 420: 7 minutes)')
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'],
                        help='cpu: test this script without a GPU')
    return parser.parse_args(argv)


def job_order(args):
    """``(section, arch, dtype)`` in order of priority: the first dtype's
    throughput (the goal is in bf16) and AMP train step for every arch
    first, then the other dtypes."""
    jobs = []
    for i in range(max(len(args.dtypes), len(args.amp_dtypes))):
        jobs += [('throughput', arch, args.dtypes[i]) for arch in args.archs
                 if i < len(args.dtypes)]
        jobs += [('train_step', arch, args.amp_dtypes[i])
                 for arch in args.archs if i < len(args.amp_dtypes)]
    return jobs


def run(args, report, write):
    """Fill ``report`` section by section, calling ``write()`` after each;
    sections that would start after the budget are listed as skipped."""
    started = time.perf_counter()
    device = torch.device(args.device)
    if device.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    report['correctness'] = check_correctness(args.archs, device)
    write()
    forms = {arch: build_forms(arch) for arch in args.archs}
    longest = 0.
    for section, arch, dtype in job_order(args):
        label = f'{section} {arch} {dtype}'
        # Skip what would likely end after the budget (a section takes
        # about as long as the longest so far: mostly compilation).
        if time.perf_counter() - started + longest > args.budget:
            report['skipped'].append(label)
            continue
        section_started = time.perf_counter()
        print(f'[gpu_check] {label} ...', file=sys.stderr, flush=True)
        if section == 'throughput':
            rows = measure_throughput(arch, dtype, args, device, forms[arch])
        else:
            rows = measure_train_step(arch, dtype, args, device,
                                      forms[arch]['train'])
        report[section].extend(rows)
        write()
        if device.type == 'cuda':
            torch.cuda.empty_cache()
        longest = max(longest, time.perf_counter() - section_started)
    best = [row['images_per_s']['median'] for row in report['throughput']
            if row['status'] == 'ok' and (row['arch'], row['dtype'],
                                          row['form']) ==
            (GOAL['arch'], GOAL['dtype'], GOAL['form'])]
    report['goal'] = dict(GOAL, measured=max(best) if best else None,
                          met=bool(best) and max(best) >=
                          GOAL['images_per_s'])
    report['elapsed_s'] = time.perf_counter() - started


def main(argv=None):
    args = parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        print(f'gpu_check: no CUDA device is available to torch '
              f'{torch.__version__} (torch.version.cuda='
              f'{torch.version.cuda}); this check needs an NVIDIA GPU',
              file=sys.stderr)
        return 2
    device = torch.device(args.device)
    report = dict(settings=vars(args), machine=machine(device),
                  tolerance=TOLERANCE, correctness=[], throughput=[],
                  train_step=[], skipped=[])

    def write():
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=2)

    run(args, report, write)
    write()
    print(markdown(report), end='')
    failed = [f'{r["arch"]} {r["form"]}' for r in report['correctness']
              if not r['ok']]
    if failed:
        print(f'gpu_check: {args.device} differs from the CPU by more than '
              f'{TOLERANCE} for {failed}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
