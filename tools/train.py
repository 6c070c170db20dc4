"""Train a model of this repository from an mmdet, mmpretrain or mmseg config.

Example::

    python tools/train.py configs/mask-rcnn_partialnet-t2_coco.py
    python tools/train.py configs/partialnet-t0_in1k.py --amp --resume

mmdet's own ``tools/train.py`` runs these configs the same way: the guard
rails (CPU DDP, resuming from the newest complete checkpoint, refusing a
checkpoint that does not fit) live in ``mmpartial.CheckedRunner``, which the
configs name as ``runner_type``. This tool adds only a one-line message for
a bad path or config before the run starts.
"""
import argparse
import sys

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmpartial  # noqa: F401  (registers models, safe checkpoint loading)
from mmpartial.apis.config import (add_runner_args, configure_training,
                                   load_config, parse_runner_args,
                                   set_work_dir)
from mmpartial.utils.checkpoint import CheckpointError


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument(
        '--resume', nargs='?', const='auto', metavar='CKPT',
        help='resume from CKPT, or without a path from the newest complete '
        'checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (fp16 on CUDA, bf16 on CPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr to the actual batch size')
    add_runner_args(parser)
    return parse_runner_args(parser)


def main():
    args = parse_args()
    try:
        cfg = load_config(args.config, args.cfg_options)
        cfg.launcher = args.launcher
        set_work_dir(cfg, args.config, args.work_dir)
        configure_training(cfg, amp=args.amp,
                           auto_scale_lr=args.auto_scale_lr,
                           resume=args.resume)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        sys.exit(f'error: {err}')
    # Errors from here on keep their traceback.
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg \
        else Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
