#!/usr/bin/env python
"""Write the toy shapes classification set (the toy COCO domain).

Usage::

    python tools/make_toy_shapes.py OUT_DIR [--train N] [--val N] \
        [--size PX] [--seed S]

The classes are the toy COCO categories (circle, square, star, triangle),
one object per image drawn by the same renderer as the toy COCO set, so a
classifier pretrained here starts Mask R-CNN on a familiar domain. Layout
as the toy ImageNet: ``OUT_DIR/{train,val}/<class>/<class>_00000.JPEG``
and ``OUT_DIR/meta/{train,val,classes}.txt``. The generator is
:func:`mmpartial.datasets.toy.make_toy_shapes`; this is its command line.
"""
import argparse
import os
import sys

from mmpartial.datasets.toy import (MAX_SIZE, MIN_SIZE, OutputDirError,
                                    int_arg, make_toy_shapes,
                                    shape_class_names)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a classification data set of the toy COCO '
        'shapes (%s) in ImageNet folder layout (train/, val/, meta/*.txt).'
        % ', '.join(shape_class_names()))
    parser.add_argument('out_dir', metavar='OUT_DIR', help='output folder')
    parser.add_argument(
        '--train', type=int_arg('--train', 1), default=80,
        help='training images per class (default: 80)')
    parser.add_argument(
        '--val', type=int_arg('--val', 1), default=20,
        help='validation images per class (default: 20)')
    parser.add_argument(
        '--size', type=int_arg('--size', MIN_SIZE, MAX_SIZE), default=64,
        help=f'image side in pixels, {MIN_SIZE}..{MAX_SIZE} (default: 64)')
    parser.add_argument(
        '--seed', type=int_arg('--seed', 0), default=0,
        help='random seed (default: 0)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        make_toy_shapes(args.out_dir, args.train, args.val, args.size,
                        args.seed)
    except OutputDirError as e:
        print(f'{os.path.basename(sys.argv[0]) or "make_toy_shapes.py"}: '
              f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
