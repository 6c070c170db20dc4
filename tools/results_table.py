"""Print the paper's tables (COCO AP, ImageNet accuracy) from finished runs.

Example::

    python tools/results_table.py work_dirs/mask-rcnn_partialnet-t*_coco \
        work_dirs/partialnet-t*_in1k --format md

Each WORK_DIR is the --work-dir of a tools/train.py (and tools/test.py)
run; the metrics and the config are read from what mmengine wrote there.
A work dir without results is listed under the tables with the reason, and
the exit status is then 1. See mmpartial/apis/results.py for how params
and FLOPs are counted.
"""
import argparse
import sys

import mmpartial  # noqa: F401  (registers models)
from mmpartial.apis.results import collect, format_tables


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dirs', nargs='+', metavar='WORK_DIR',
                        help='work dirs of finished runs')
    parser.add_argument('--format', choices=['md', 'csv'], default='md',
                        help='Markdown (default) or CSV')
    parser.add_argument('--no-flops', action='store_true',
                        help='leave out params and FLOPs (no model build)')
    return parser.parse_args()


def main():
    args = parse_args()
    tables, missing = collect(args.work_dirs,
                              with_complexity=not args.no_flops)
    print(format_tables(tables, missing, args.format,
                        with_complexity=not args.no_flops), end='')
    if missing:
        sys.exit(1)


if __name__ == '__main__':
    main()
