"""Fold a trained PartialNet model into its deploy form and save it.

Example::

    python tools/reparameterize.py configs/partialnet-t0_in1k.py \
        work_dirs/partialnet-t0_in1k/epoch_300.pth \
        checkpoints/partialnet-t0_in1k_deploy.pth

Works for classifiers (mmpretrain configs) and detectors (mmdet configs:
their backbone is folded, the rest copied). The result loads strictly into
the same config with ``model.backbone.deploy=True``::

    python tools/test.py configs/partialnet-t0_in1k.py \
        checkpoints/partialnet-t0_in1k_deploy.pth \
        --cfg-options model.backbone.deploy=True

The logic is :func:`mmpartial.apis.deploy.reparameterize`.
"""
import argparse
import sys

from mmengine.config import DictAction

from mmpartial.apis import ConfigError, ModelBuildError
from mmpartial.apis.deploy import (DeployError, describe_reparameterization,
                                   reparameterize)
from mmpartial.utils.checkpoint import CheckpointError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config of the trained model')
    parser.add_argument('checkpoint', help='train-form checkpoint')
    parser.add_argument('out', help='where to write the deploy checkpoint')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace OUT if it exists')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        meta = reparameterize(args.config, args.checkpoint, args.out,
                              cfg_options=args.cfg_options,
                              overwrite=args.overwrite)
    except (DeployError, CheckpointError, ConfigError, ModelBuildError,
            FileNotFoundError) as err:
        sys.exit(f'error: {err}')
    print(describe_reparameterization(meta, args.out))


if __name__ == '__main__':
    main()
