#!/usr/bin/env python
"""Write a small synthetic classification dataset in ImageNet's folder layout.

Usage::

    python tools/make_toy_imagenet.py OUT_DIR [--classes K] \
        [--train-per-class N] [--val-per-class M] [--size S] [--seed SEED]

Layout written (the format of mmpretrain's ``ImageNet`` / ``CustomDataset``):
``OUT_DIR/{train,val}/<class>/<class>_00000.JPEG ...`` and
``OUT_DIR/meta/{train,val,classes}.txt``. The generator is
:func:`mmpartial.datasets.toy.make_toy_imagenet` (see there for the
classes and a matching dataset config); this is its command line.
"""
import argparse
import os
import sys

from mmpartial.datasets.toy import (CLASSES_HINT, MAX_CLASSES, MAX_SIZE,
                                    MIN_SIZE, OutputDirError, int_arg,
                                    make_toy_imagenet)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a small synthetic image classification dataset '
        'in ImageNet folder layout (train/, val/, meta/*.txt).')
    parser.add_argument('out_dir', metavar='OUT_DIR', help='output folder')
    parser.add_argument(
        '--classes',
        type=int_arg('--classes', 2, MAX_CLASSES, CLASSES_HINT),
        default=4,
        help=f'number of classes, 2..{MAX_CLASSES} (default: 4)')
    parser.add_argument(
        '--train-per-class',
        type=int_arg('--train-per-class', 1),
        default=80,
        help='training images per class (default: 80)')
    parser.add_argument(
        '--val-per-class',
        type=int_arg('--val-per-class', 1),
        default=20,
        help='validation images per class (default: 20)')
    parser.add_argument(
        '--size',
        type=int_arg('--size', MIN_SIZE, MAX_SIZE),
        default=64,
        help=f'image side in pixels, {MIN_SIZE}..{MAX_SIZE} (default: 64)')
    parser.add_argument(
        '--seed',
        type=int_arg('--seed', 0),
        default=0,
        help='random seed (default: 0)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        make_toy_imagenet(
            args.out_dir,
            num_classes=args.classes,
            train_per_class=args.train_per_class,
            val_per_class=args.val_per_class,
            size=args.size,
            seed=args.seed)
    except OutputDirError as e:
        print(f'{os.path.basename(sys.argv[0]) or "make_toy_imagenet.py"}: '
              f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
