#!/usr/bin/env python
"""Regenerate configs/metafile.yml and model-index.yml (mmpretrain's
model-index format): every config with its parameters and FLOPs.

Example::

    python tools/make_metafile.py                     # count every config
    python tools/make_metafile.py --only upernet_partialnet-t0_ade20k

Counting builds each model and traces it once with mmengine.analysis at the
input size papers report (see the metafile's header); all configs take minutes
on a CPU. ``--only`` recounts the named configs and keeps the other
entries of the existing file. :mod:`mmpartial.apis.metafile` does the work.
"""
import argparse
import logging
import sys
import time

from mmengine.logging import MMLogger

import mmpartial  # noqa: F401  (registers the models)
from mmpartial.apis.config_checks import ConfigError
from mmpartial.apis.metafile import (METAFILE, MODEL_INDEX, MetafileError,
                                     make_metafile, read_metafile,
                                     write_metafile)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config-dir', default='configs',
                        help='where the configs are (default configs)')
    parser.add_argument('--out', default=METAFILE,
                        help=f'the metafile (default {METAFILE})')
    parser.add_argument('--model-index', default=MODEL_INDEX,
                        help=f'the index importing it (default {MODEL_INDEX})')
    parser.add_argument('--only', nargs='+', metavar='NAME',
                        help='recount just these configs (names without .py)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    MMLogger.get_current_instance().setLevel(logging.ERROR)
    start = time.perf_counter()
    try:
        content = make_metafile(args.config_dir, only=args.only,
                                previous=read_metafile(args.out),
                                progress=print)
    except (ConfigError, FileNotFoundError, MetafileError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    write_metafile(content, args.out, args.model_index)
    print(f'{len(content["Models"])} models -> {args.out} (imported by '
          f'{args.model_index}) in {time.perf_counter() - start:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
