"""Compare the learned DPConv split ratios of finished runs: one figure
with a line per run, and JSON with each run's ratios, validation top-1 and
deployed MACs; see :func:`mmpartial.apis.dpconv_report.compare_runs`.

    python tools/dpconv_compare.py WORK_DIR [WORK_DIR ...] --out DIR
"""
import argparse
import os.path as osp
import sys

from mmpartial.apis.dpconv_report import COMPARE_NAME, compare_runs
from mmpartial.apis.results import ResultsError
from mmpartial.utils.checkpoint import CheckpointError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Compare the learned split ratios of DPConv runs')
    parser.add_argument('work_dirs', nargs='+', metavar='WORK_DIR',
                        help='work dirs of finished tools/train.py runs')
    parser.add_argument('--out', required=True,
                        help='directory for dpconv_compare.json/.png')
    parser.add_argument('--labels', nargs='+',
                        help='one legend label per run (default: budget '
                        'and seed from its config)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        content = compare_runs(args.work_dirs, args.out, labels=args.labels)
    except (ResultsError, ValueError, CheckpointError) as err:
        sys.exit(f'dpconv_compare: error: {err}')
    for run in content['runs']:
        top1 = 'n/a' if run['top1'] is None else f'{run["top1"]:.2f}%'
        print(f'{run["label"]}: top-1 {top1}, mean ratio '
              f'{run["mean_ratio"]:.3f}, {run["deployed_macs"] / 1e6:.1f} M '
              'MACs deployed')
    print(f'wrote {osp.join(args.out, COMPARE_NAME)}.json and .png')


if __name__ == '__main__':
    main()
