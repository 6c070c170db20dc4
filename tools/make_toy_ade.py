#!/usr/bin/env python
"""Generate a small semantic-segmentation data set of shapes, laid out as
ADE20K (ADEChallengeData2016).

The segmentation configs train and evaluate on it on a CPU in minutes,
without downloading ADE20K. Usage::

    python tools/make_toy_ade.py data/toy_ade [--train 256] [--val 32]
                                 [--seed 0] [--size 160 128]

Layout written: ``OUT_DIR/images/{training,validation}/*.jpg`` and index
PNGs ``OUT_DIR/annotations/{training,validation}/*.png`` (0 unlabeled,
1 background, 2-5 the shapes). The generator is
:func:`mmpartial.datasets.toy.make_toy_ade`; this is its command line.
"""
import argparse
import sys
import time

from mmpartial.datasets.toy import (ADE_CLASSES, DEFAULT_ADE_SIZE,
                                    SIZE_JITTER, SIZE_RANGE, OutputDirError,
                                    int_arg, make_toy_ade,
                                    output_error_message)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a small ADE20K-style semantic segmentation data '
        'set of shapes (classes: %s).' % ', '.join(ADE_CLASSES))
    parser.add_argument('out_dir', help='output directory (created)')
    parser.add_argument('--train', type=int_arg('--train', 1), default=256,
                        help='number of training images (default 256)')
    parser.add_argument('--val', type=int_arg('--val', 1), default=32,
                        help='number of validation images (default 32)')
    parser.add_argument('--seed', type=int_arg('--seed', 0), default=0,
                        help='random seed (default 0)')
    lo, hi = SIZE_RANGE
    parser.add_argument('--size', type=int_arg('--size', lo, hi), nargs=2,
                        metavar=('W', 'H'), default=list(DEFAULT_ADE_SIZE),
                        help='base image size; each image is jittered to '
                        '%.1f-%.1f times it (default %d %d)' %
                        (*SIZE_JITTER, *DEFAULT_ADE_SIZE))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        summary = make_toy_ade(args.out_dir, args.train, args.val, args.seed,
                               tuple(args.size), progress=print)
    except OSError as exc:
        message = str(exc) if isinstance(exc, OutputDirError) \
            else output_error_message(exc, args.out_dir)
        print(f'error: {message}', file=sys.stderr)
        return 1
    parts = [f"{split} {s['images']} images"
             for split, s in summary['splits'].items()]
    print(f"done in {time.perf_counter() - start:.1f}s: {', '.join(parts)} "
          f"-> {summary['out_dir']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
