"""Convert a checkpoint of the paper's reference code to this package.

Example::

    python tools/convert_official.py partialnet_t2.pth \
        checkpoints/partialnet-t2_in1k_converted.pth

The variant is read off the tensor shapes; ``--arch`` makes it a check. The
result loads with ``load_from`` into configs/partialnet-<arch>_in1k.py, or
into a detection config through ``model.backbone.init_cfg.checkpoint``
(prefix ``backbone.``). Nothing is written unless every tensor maps.
"""
import argparse
import os
import os.path as osp
import pickle
import sys

import torch

import mmpartial
from mmpartial.utils.official_weights import (ConversionError,
                                              convert_official_state_dict)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='checkpoint saved by the reference code')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--arch', choices=['t0', 't1', 't2', 's', 'm', 'l'],
                        help='fail unless the checkpoint is this variant')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace dst if it exists')
    parser.add_argument(
        '--trust-pickle', action='store_true',
        help='unpickle arbitrary Python objects in src (e.g. the training '
        'arguments the reference script stores); only for files you trust')
    return parser.parse_args()


def load_source(path, trust_pickle):
    if not osp.isfile(path):
        raise FileNotFoundError(f'source checkpoint {path!r} does not exist')
    try:
        return torch.load(path, map_location='cpu',
                          weights_only=not trust_pickle)
    except pickle.UnpicklingError as err:
        raise ConversionError(
            f'{path!r} holds Python objects besides tensors, which are not '
            f'loaded by default because unpickling can run code ({err}). If '
            'you trust the file, re-run with --trust-pickle.') from None
    except (RuntimeError, EOFError) as err:
        raise ConversionError(f'{path!r} is not a readable PyTorch '
                              f'checkpoint: {err}') from None


def main():
    args = parse_args()
    if osp.exists(args.dst) and not args.overwrite:
        raise ConversionError(f'{args.dst!r} exists; pass --overwrite to '
                              'replace it')
    state, meta = convert_official_state_dict(
        load_source(args.src, args.trust_pickle), arch=args.arch)
    meta.update(converted_from=osp.abspath(args.src),
                mmpartial_version=mmpartial.__version__)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    tmp = args.dst + '.tmp'
    torch.save(dict(state_dict=state, meta=meta), tmp)
    os.replace(tmp, args.dst)  # never leave a half-written dst behind
    parts = ['backbone'] + (['head'] if meta['with_head'] else []) + \
        (['output norms'] if meta['with_out_norm'] else [])
    print(f'PartialNet-{meta["arch"]}: {len(state)} tensors converted '
          f'({", ".join(parts)}) -> {args.dst}')


if __name__ == '__main__':
    try:
        main()
    except (ConversionError, FileNotFoundError) as err:
        sys.exit(f'error: {err}')
