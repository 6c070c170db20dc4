"""Measure a PartialNet model: parameters, MACs, latency and throughput.

Examples::

    # The T0 classifier on this CPU: latency on 1 thread, batch 32 on 2
    python tools/benchmark.py --arch t0 --threads 1 --batch-threads 2 \
        --batch 32 --json work_dirs/bench-t0.json

    # PyTorch against ONNX runtimes, train and deploy form
    python tools/benchmark.py --arch t0 --backend eager compiled \
        onnxruntime openvino --threads 1 --batch-threads 2

    # The layer profile at T2's stage-3 shape (256 channels, 14x14)
    python tools/benchmark.py --layers 256 14 --threads 1 \
        --batch-threads 2 --batch 32

    # A GPU: bf16 and fp16, channels_last, checked against the CPU first
    python tools/benchmark.py --arch t0 --device cuda --dtype bf16 fp16 \
        --channels-last --compile --batch 256

Every model is timed in eval mode under ``torch.no_grad`` on random
normalised images, in train form (as built) and deploy form (after
``switch_to_deploy()``), for every ``--dtype`` and ``--backend``, side by
side: ``--warmup`` untimed and ``--repeats`` timed rounds, each one pass
of every setting in turn. Each setting gets its median and interquartile
range and its speed-up over the train form in eager mode (the median of
the per-round ratios). On a GPU every form is first checked against the
CPU (forward and backward, float32). ``--train-step`` times training steps
(images/s, peak memory). The Markdown tables go to stdout, progress to
stderr, everything to ``--json``. More examples: docs/benchmark.md; the
logic lives in :mod:`mmpartial.apis.benchmark`.

Exit status: 0 when every measurement ran, 1 on a bad input (with a
one-line message), when a measurement failed (its row says why) or when
the GPU and the CPU disagree.
"""
import argparse
import sys

from mmengine.config import DictAction

from mmpartial.apis import ConfigError, ModelBuildError
from mmpartial.apis.benchmark import (BACKENDS, DTYPES, FORMS,
                                      LAYER_KINDS, BenchmarkError,
                                      BenchmarkOptions, failed_rows,
                                      markdown_report, options_problem,
                                      run_benchmark, write_json)
from mmpartial.models import PartialNet
from mmpartial.utils.checkpoint import CheckpointError

default = BenchmarkOptions.default


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark a PartialNet classifier, detector, '
        'segmentor or single layers: params, MACs, latency, throughput, '
        'training steps',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    what = parser.add_argument_group('what to measure (one of)')
    what.add_argument('config', nargs='?',
                      help='an mmpretrain, mmdet or mmseg config with a '
                      'PartialNet backbone')
    what.add_argument('--arch', choices=list(PartialNet.arch_zoo),
                      help='the 1000-class classifier of this variant')
    what.add_argument('--layers', nargs='+', type=int, metavar='C H [W]',
                      help="the layer profile (the paper's Table 6): "
                      'Conv, DWConv, PConv, PAT_ch, PAT_sp, PAT_sf and '
                      'their blocks on (B, C, H, W) inputs')
    parser.add_argument('--layer-kinds', nargs='+',
                        choices=list(LAYER_KINDS),
                        metavar='KIND', help='with --layers: only these, of '
                        f'{", ".join(LAYER_KINDS)} (default: all)')
    parser.add_argument('--checkpoint',
                        help='weights to load (default: initialised ones)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    parser.add_argument('--device', choices=['cpu', 'cuda'],
                        default=default('device'))
    parser.add_argument('--dtype', nargs='+', choices=list(DTYPES),
                        default=default('dtype'),
                        help='model and input dtypes, each measured')
    parser.add_argument('--form', nargs='+', choices=FORMS,
                        default=default('form'),
                        help='train: as built; deploy: after '
                        'switch_to_deploy()')
    parser.add_argument('--backend', nargs='+', choices=BACKENDS,
                        default=default('backend'),
                        help='how each form runs: PyTorch eager or '
                        'compiled, or exported to ONNX and run by '
                        'onnxruntime or OpenVINO (all timed side by side)')
    parser.add_argument('--img-size', nargs='+', type=int,
                        metavar='H [W]',
                        help='input size; default 224 for classification, '
                        '800 1280 for detection, 512 for segmentation')
    parser.add_argument('--batch', type=int, default=default('batch'),
                        help='batch size of the throughput measurement')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch threads for latency at batch 1 (and '
                        'for throughput unless --batch-threads); default: '
                        "torch's default")
    parser.add_argument('--batch-threads', type=int, default=None,
                        help='torch threads for the throughput measurement')
    parser.add_argument('--repeats', type=int, default=default('repeats'),
                        help='timed rounds (one pass of every form and '
                        'mode each)')
    parser.add_argument('--warmup', type=int, default=default('warmup'),
                        help='untimed rounds before timing')
    parser.add_argument('--channels-last', action='store_true',
                        help='model and inputs in channels_last memory format')
    parser.add_argument('--compile', action='store_true',
                        help='short for --backend ... compiled')
    parser.add_argument('--compile-options', nargs='+', action=DictAction,
                        help="torch.compile's options (Inductor settings), "
                        'key=value, e.g. freezing=True')
    parser.add_argument('--train-step', action='store_true',
                        help='also time training steps (forward, backward, '
                        'SGD step) of the train form, with peak memory')
    parser.add_argument('--no-inference', dest='inference',
                        action='store_false',
                        help='skip the inference timing (with --train-step)')
    parser.add_argument('--json', metavar='OUT',
                        help='write every number and setting here')
    parser.add_argument('--quiet', action='store_true',
                        help='no progress lines on stderr')
    options = BenchmarkOptions(**vars(parser.parse_args(argv)))
    problem = options_problem(options)
    if problem:
        parser.error(problem)
    return options


def main(argv=None):
    options = parse_args(argv)
    try:
        report = run_benchmark(options)
    except (BenchmarkError, CheckpointError, ConfigError,
            ModelBuildError) as err:
        sys.exit(f'error: {err}')
    print(markdown_report(report), end='')
    if options.json:
        write_json(report, options.json)
    failed = failed_rows(report)
    if failed:
        sys.exit(f'error: {len(failed)} measurement(s) failed; see the '
                 'table and the tracebacks above')


if __name__ == '__main__':
    main()
