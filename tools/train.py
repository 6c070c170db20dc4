"""Train a model of this repository from an mmdet or mmpretrain config.

Example::

    python tools/train.py configs/mask-rcnn_partialnet-t2_coco.py
    python tools/train.py configs/partialnet-t0_in1k.py --amp --resume
"""
import argparse
import os.path as osp
import sys

from mmengine.runner import Runner

import mmpartial  # noqa: F401  (registers models, safe checkpoint loading)
from mmpartial.engine.runner_setup import (add_runner_args, load_config,
                                           parse_runner_args, set_work_dir,
                                           setup_cpu_distributed)
from mmpartial.engine.amp import enable_amp
from mmpartial.utils.checkpoint_files import (CheckpointError,
                                              check_checkpoint_file,
                                              check_checkpoint_fits,
                                              find_latest_complete_checkpoint)


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


def resolve_resume(cfg, resume):
    if resume is None:
        return
    if resume == 'auto':
        latest = find_latest_complete_checkpoint(cfg.work_dir) \
            if osp.isdir(cfg.work_dir) else None
        if latest is None:
            print(f'--resume: no complete checkpoint in {cfg.work_dir}; '
                  'starting a new run', file=sys.stderr)
            return
        resume = latest
    check_checkpoint_file(resume)
    cfg.resume = True
    cfg.load_from = resume


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.config, args.work_dir)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or \
                'base_batch_size' not in cfg.auto_scale_lr:
            raise ValueError('--auto-scale-lr needs auto_scale_lr.'
                             'base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    resolve_resume(cfg, args.resume)
    setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    if cfg.get('load_from'):
        check_checkpoint_fits(cfg.load_from, runner.model)
    runner.train()


if __name__ == '__main__':
    try:
        main()
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        sys.exit(f'error: {err}')
