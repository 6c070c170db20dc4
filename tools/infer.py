"""Classify one image with a checkpoint and print the top-5 classes.

Example::

    python tools/infer.py demo.jpg configs/partialnet-t0_in1k.py \
        work_dirs/partialnet-t0_in1k/epoch_300.pth

Class names come from the checkpoint's metadata (``dataset_meta``) when
training saved them, else from the config's dataset, else numbers.
"""
import argparse
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

import mmpartial  # noqa: F401  (registers models, safe checkpoint loading)
from mmpartial.utils.checkpoint_files import (CheckpointError,
                                              check_checkpoint_file)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='classification config')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--topk', type=int, default=5)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def class_names(checkpoint, cfg, num_classes):
    names = (checkpoint.get('meta') or {}).get('dataset_meta', {}).get(
        'classes')
    if not names:
        names = cfg.test_dataloader.dataset.get('metainfo', {}).get('classes')
    if not names or len(names) != num_classes:
        names = [f'class {i}' for i in range(num_classes)]
    return list(names)


def main():
    args = parse_args()
    if not osp.isfile(args.image):
        raise FileNotFoundError(f'image {args.image!r} does not exist')
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config {args.config!r} does not exist')
    check_checkpoint_file(args.checkpoint)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('default_scope') != 'mmpretrain':
        raise ValueError(f'{args.config!r} is not a classification config '
                         '(default_scope must be mmpretrain)')
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    model = MODELS.build(cfg.model)
    checkpoint = load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.to(args.device).eval()

    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    data = pipeline(dict(img_path=args.image))
    batch = model.data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
        False)
    with torch.no_grad():
        sample = model(**batch, mode='predict')[0]
    scores = sample.pred_score
    names = class_names(checkpoint, cfg, scores.numel())
    top = scores.topk(min(args.topk, scores.numel()))
    print(f'{args.image}:')
    for rank, (score, idx) in enumerate(zip(top.values, top.indices), 1):
        print(f'  {rank}. {names[idx]:<24} {score.item():.4f}')


if __name__ == '__main__':
    try:
        main()
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        sys.exit(f'error: {err}')
