"""The paper's workflow on embedded data: pretrain PartialNet as a
classifier, hand its backbone to Mask R-CNN, train and evaluate the
detector, save pictures and print the paper's tables.

Example::

    python tools/toy_pipeline.py --work-dir work_dirs/demo_1
    python tools/toy_pipeline.py --work-dir work_dirs/quick \
        --detect-options train_cfg.max_epochs=2

See mmpartial/apis/toy_pipeline.py for the stages. Every run needs its own
--work-dir; an unchanged pretraining stage of an earlier run in the same
parent folder is reused (and the log says so) unless --no-reuse is given.
"""
import argparse
import sys

from mmengine.config import DictAction

import mmpartial  # noqa: F401  (registers models, safe checkpoint loading)
from mmpartial.apis.toy_pipeline import (DETECT_CONFIG, PRETRAIN_CONFIG,
                                         PipelineError, run_toy_pipeline)
from mmpartial.utils.checkpoint import CheckpointError


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', required=True,
                        help='the run\'s own work dir')
    parser.add_argument('--data-root', default='data',
                        help='where the toy data folders are kept '
                        '(default: data)')
    parser.add_argument('--no-reuse', action='store_true',
                        help='pretrain again even if an earlier run did '
                        'with the same config and data')
    parser.add_argument('--pretrain-config', default=PRETRAIN_CONFIG)
    parser.add_argument('--detect-config', default=DETECT_CONFIG)
    parser.add_argument('--pretrain-options', nargs='+', action=DictAction,
                        default={}, help='overrides of the pretraining '
                        'config, key=value')
    parser.add_argument('--detect-options', nargs='+', action=DictAction,
                        default={}, help='overrides of the detection '
                        'config, key=value')
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        table = run_toy_pipeline(
            args.work_dir, data_root=args.data_root,
            reuse=not args.no_reuse, pretrain_config=args.pretrain_config,
            detect_config=args.detect_config,
            pretrain_options=args.pretrain_options,
            detect_options=args.detect_options)
    except (PipelineError, CheckpointError, FileNotFoundError) as err:
        sys.exit(f'error: {err}')
    print('\n' + table, end='')


if __name__ == '__main__':
    main()
