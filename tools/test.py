"""Evaluate a checkpoint on the test set of an mmdet, mmpretrain or mmseg
config.

Example::

    python tools/test.py configs/mask-rcnn_partialnet-t2_coco.py \
        work_dirs/mask-rcnn_partialnet-t2_coco/epoch_12.pth --show-dir vis

As mmdet's ``tools/test.py``, with a one-line message for a bad path,
checkpoint file or config before the run starts.
"""
import argparse
import sys

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmpartial  # noqa: F401  (registers models, safe checkpoint loading)
from mmpartial.apis.config import (add_runner_args, configure_test,
                                   load_config, parse_runner_args,
                                   set_work_dir)
from mmpartial.utils.checkpoint import CheckpointError


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the test log goes')
    parser.add_argument('--out', help='dump raw predictions to this .pkl')
    parser.add_argument('--show-dir',
                        help='save pictures of the predictions here')
    add_runner_args(parser)
    return parse_runner_args(parser)


def main():
    args = parse_args()
    try:
        cfg = load_config(args.config, args.cfg_options)
        cfg.launcher = args.launcher
        set_work_dir(cfg, args.config, args.work_dir)
        configure_test(cfg, args.checkpoint, show_dir=args.show_dir,
                       out=args.out)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        sys.exit(f'error: {err}')
    # Errors from here on keep their traceback.
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg \
        else Runner.from_cfg(cfg)
    runner.test()


if __name__ == '__main__':
    main()
