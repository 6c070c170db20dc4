"""Classify one image with a checkpoint and print the top-5 classes.

Example::

    python tools/infer.py demo.jpg configs/partialnet-t0_in1k.py \
        work_dirs/partialnet-t0_in1k/epoch_300.pth

Class names come from the checkpoint's metadata (``dataset_meta``) when
training saved them, else from the config's dataset, else numbers. The
logic is :class:`mmpartial.apis.inference.Classifier`.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

from mmpartial.apis.inference import Classifier
from mmpartial.utils.checkpoint import CheckpointError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='classification config')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--topk', type=int, default=5)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        if not osp.isfile(args.image):
            raise FileNotFoundError(f'image {args.image!r} does not exist')
        classifier = Classifier(args.config, args.checkpoint, args.device,
                                args.cfg_options)
        top = classifier.top_classes(args.image, args.topk)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        sys.exit(f'error: {err}')
    print(f'{args.image}:')
    for rank, (name, score) in enumerate(top, 1):
        print(f'  {rank}. {name:<24} {score:.4f}')


if __name__ == '__main__':
    main()
