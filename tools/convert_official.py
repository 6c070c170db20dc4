"""Convert a checkpoint of the paper's reference code to this package.

Example::

    python tools/convert_official.py partialnet_t2.pth \
        checkpoints/partialnet-t2_in1k_converted.pth

The variant is read off the tensor shapes; ``--arch`` makes it a check. The
source may be any path mmengine's loaders read (a local file, ``http(s)://``,
``s3://``). The result loads with ``load_from`` into
configs/partialnet-<arch>_in1k.py, or into a detection config through
``model.backbone.init_cfg.checkpoint`` (prefix ``backbone.``). Nothing is
written unless every tensor maps. The logic is
:func:`mmpartial.apis.convert.convert_official_checkpoint`.
"""
import argparse
import sys

from mmpartial.apis.convert import (ConversionError,
                                    convert_official_checkpoint,
                                    describe_conversion)
from mmpartial.models import PartialNet
from mmpartial.utils.checkpoint import CheckpointError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='checkpoint saved by the reference code')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--arch', choices=list(PartialNet.arch_zoo),
                        help='fail unless the checkpoint is this variant')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace dst if it exists')
    parser.add_argument(
        '--trust-pickle', action='store_true',
        help='unpickle arbitrary Python objects in src (e.g. the training '
        'arguments the reference script stores); only for files you trust')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        state, meta = convert_official_checkpoint(
            args.src, args.dst, arch=args.arch, overwrite=args.overwrite,
            trust_pickle=args.trust_pickle)
    except (ConversionError, CheckpointError, FileNotFoundError) as err:
        sys.exit(f'error: {err}')
    print(describe_conversion(state, meta, args.dst))


if __name__ == '__main__':
    main()
