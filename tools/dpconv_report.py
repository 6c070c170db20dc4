"""Write the learned split ratio of every DPConv layer of a checkpoint as
``DIR/dpconv_ratios.json`` and a bar plot ``DIR/dpconv_ratios.png`` (the
paper's Figure 7); see :func:`mmpartial.apis.dpconv_report.dpconv_report`.

    python tools/dpconv_report.py CONFIG CHECKPOINT --out DIR
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

from mmpartial.apis.dpconv_report import JSON_NAME, dpconv_report
from mmpartial.utils.checkpoint import CheckpointError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Report the learned split ratios of the DPConv layers '
        'of a checkpoint as JSON and as a bar plot')
    parser.add_argument('config', help='the config the model was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('--out', required=True,
                        help='directory for dpconv_ratios.json/.png')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        summary = dpconv_report(args.config, args.checkpoint, args.out,
                                cfg_options=args.cfg_options)
    except (FileNotFoundError, ValueError, CheckpointError) as err:
        sys.exit(f'dpconv_report: error: {err}')
    totals = summary['totals']
    print(f'{totals["num_layers"]} DPConv layers, mean ratio '
          f'{totals["mean_ratio"]:.4f}, {totals["conv_channels"]} of '
          f'{totals["channels"]} channels convolved; wrote '
          f'{osp.join(args.out, JSON_NAME)} and .png')


if __name__ == '__main__':
    main()
