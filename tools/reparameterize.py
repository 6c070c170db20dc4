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
"""
import argparse
import sys

from mmengine.config import DictAction

import mmpartial  # noqa: F401  (registers models, safe checkpoint loading)
from mmpartial.engine.config_checks import ConfigError
from mmpartial.utils.deploy import DeployError, reparameterize


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config of the trained model')
    parser.add_argument('checkpoint', help='train-form checkpoint')
    parser.add_argument('out', help='where to write the deploy checkpoint')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace OUT if it exists')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    return parser.parse_args()


def main():
    args = parse_args()
    meta = reparameterize(args.config, args.checkpoint, args.out,
                          cfg_options=args.cfg_options,
                          overwrite=args.overwrite)
    print(f'folded {meta["folded_layers"]} layers '
          f'({meta["folded_norms"]} norm layers into convolutions/linears, '
          f'{meta["merged_convs"]} PAT_sp 1x1 convolutions into the MLPs), '
          f'{meta["affine_norms"]} norms after a gate kept as a channel '
          f'scale and shift, {meta["removed_dropouts"]} dropout/drop-path '
          f'layers removed -> {args.out}')
    print('load it with: --cfg-options model.backbone.deploy=True')


if __name__ == '__main__':
    try:
        main()
    except (DeployError, ConfigError, FileNotFoundError) as err:
        sys.exit(f'error: {err}')
