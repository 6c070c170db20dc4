"""Evaluate a checkpoint on the test set of an mmdet or mmpretrain config.

Example::

    python tools/test.py configs/mask-rcnn_partialnet-t2_coco.py \
        work_dirs/mask-rcnn_partialnet-t2_coco/epoch_12.pth --show-dir vis
"""
import argparse
import sys

from mmengine.runner import Runner

import mmpartial  # noqa: F401  (registers models, safe checkpoint loading)
from mmpartial.engine.runner_setup import (add_dump_metric, add_runner_args,
                                           enable_visualization, load_config,
                                           parse_runner_args, set_work_dir,
                                           setup_cpu_distributed)
from mmpartial.utils.checkpoint_files import (CheckpointError,
                                              check_checkpoint_file,
                                              check_checkpoint_fits)


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
    check_checkpoint_file(args.checkpoint)
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.config, args.work_dir)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        enable_visualization(cfg, args.show_dir)
    setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    check_checkpoint_fits(args.checkpoint, runner.model)
    if args.out:
        add_dump_metric(runner, args.out)
    runner.test()


if __name__ == '__main__':
    try:
        main()
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        sys.exit(f'error: {err}')
