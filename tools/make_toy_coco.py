#!/usr/bin/env python
"""Generate a small COCO-style instance-segmentation data set of shapes.

The point is an embedded default data set: Mask R-CNN configs can train and
evaluate on a CPU in minutes without downloading COCO. Usage::

    python tools/make_toy_coco.py data/toy_coco [--train 64] [--val 16]
                                  [--seed 0] [--size 320 256]

Layout written: ``OUT_DIR/annotations/instances_{train,val}2017.json`` and
``OUT_DIR/{train,val}2017/<12 digits>.jpg``. The generator is
:func:`mmpartial.datasets.toy.make_toy_coco`; this is its command line.
"""
import argparse
import sys
import time

from mmpartial.datasets.toy import (CLASSES, DEFAULT_SIZE, SIZE_JITTER,
                                    SIZE_RANGE, make_toy_coco,
                                    output_error_message)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a small COCO-2017-style instance segmentation '
        'data set of shapes (%s).' % ', '.join(CLASSES))
    parser.add_argument('out_dir', help='output directory (created)')
    parser.add_argument('--train', type=int, default=64,
                        help='number of training images (default 64)')
    parser.add_argument('--val', type=int, default=16,
                        help='number of validation images (default 16)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed (default 0)')
    parser.add_argument('--size', type=int, nargs=2, metavar=('W', 'H'),
                        default=list(DEFAULT_SIZE),
                        help='base image size; each image is jittered to '
                        '%.1f-%.1f times it (default %d %d)' %
                        (*SIZE_JITTER, *DEFAULT_SIZE))
    args = parser.parse_args(argv)
    # Checked here too, so that errors name the flags, not the arguments
    # of make_toy_coco.
    for flag in ('train', 'val'):
        if getattr(args, flag) < 1:
            parser.error(f'--{flag} must be >= 1, got {getattr(args, flag)}')
    if args.seed < 0:
        parser.error(f'--seed must be >= 0, got {args.seed}')
    lo, hi = SIZE_RANGE
    if not all(lo <= d <= hi for d in args.size):
        parser.error(f'--size W H must both be in [{lo}, {hi}], '
                     f'got {args.size[0]} {args.size[1]}')
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        summary = make_toy_coco(args.out_dir, args.train, args.val, args.seed,
                                tuple(args.size), progress=print)
    except OSError as exc:
        print(f'error: {output_error_message(exc, args.out_dir)}',
              file=sys.stderr)
        return 1
    parts = [f"{split} {s['images']} images / {s['annotations']} annotations"
             for split, s in summary['splits'].items()]
    print(f"done in {time.perf_counter() - start:.1f}s: {', '.join(parts)} "
          f"-> {summary['out_dir']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
