"""Convert checkpoints of the paper's reference training code to this
package (``tools/convert_official.py``).

The reference code keeps stages and merging layers in one flat list
(``stages.0`` stage 1, ``stages.1`` merging, ``stages.2`` stage 2, ...), calls
the stem ``patch_embed`` and names layers by position inside ``nn.Sequential``
(``mlp.0``, ``mlp.4.norm2``, ...). The table below renames them; nothing is
reshaped. :func:`convert_official_state_dict` then checks every key and shape
against a freshly built model and refuses partial results.
"""
import os.path as osp
import pickle
import re
from collections import OrderedDict

import torch
from mmengine.fileio import get_local_path

from mmpartial.models import PartialNet, heads
from mmpartial.utils.checkpoint import (CheckpointError, check_checkpoint_file,
                                        load_checkpoint_file,
                                        unwrap_state_dict,
                                        save_checkpoint)
from mmpartial.version import __version__

# (reference pattern, our template); applied in order, first match wins.
_BLOCK_RULES = [
    (r'spatial_mixing\.partial_conv3\.', 'token_mixer.conv.'),
    (r'spatial_mixing\.attn\.cfc1\.', 'token_mixer.gate.conv.'),
    (r'spatial_mixing\.attn\.bn\.', 'token_mixer.gate.norm.'),
    (r'spatial_mixing\.attn\.qkv\.', 'token_mixer.attn.qkv.'),
    (r'spatial_mixing\.attn\.proj\.', 'token_mixer.attn.proj.'),
    (r'spatial_mixing\.attn\.rpe_k\.lookup_table_bias$',
     'token_mixer.attn.rel_pos.bias_table'),
    (r'spatial_mixing\.norm\.', 'token_mixer.norm.'),
    (r'mlp\.0\.', 'mlp.fc1.'),
    (r'mlp\.1\.', 'mlp.norm.'),
    (r'mlp\.3\.', 'mlp.fc2.'),
    (r'mlp\.4\.conv_attn\.', 'mlp.pat_sp.gate_conv.'),
    (r'mlp\.4\.conv\.', 'mlp.pat_sp.conv.'),
    (r'mlp\.4\.norm2\.', 'mlp.pat_sp.pre_norm.'),
    (r'mlp\.4\.norm\.', 'mlp.pat_sp.norm.'),
]
_HEAD_RULES = {
    'avgpool_pre_head.1.weight': 'head.conv.weight',
    'head.weight': 'head.fc.weight',
    'head.bias': 'head.fc.bias',
}
# Where the reference code keeps the weights, and the prefixes its
# wrappers (DDP, an EMA model, a detector) add to every key.
CONTAINERS = ('state_dict', 'model', 'model_ema')
WRAPPER_PREFIXES = ('module.', 'model.', 'backbone.')


class ConversionError(ValueError):
    """A reference checkpoint that cannot be converted completely."""


def unwrap_official_state_dict(checkpoint):
    """The flat state dict inside a reference checkpoint."""
    state = unwrap_state_dict(checkpoint, containers=CONTAINERS,
                              prefixes=WRAPPER_PREFIXES)
    if not state:
        raise ConversionError('no state dict found: expected a dict of '
                              'tensors, possibly under "state_dict" or '
                              '"model"')
    return OrderedDict(state)


def rename_official_key(key):
    """Our name of a reference key, or None when no rule maps it."""
    if key in _HEAD_RULES:
        return _HEAD_RULES[key]
    m = re.fullmatch(r'patch_embed\.proj\.(.+)', key)
    if m:
        return f'backbone.downsample_layers.0.conv.{m[1]}'
    m = re.fullmatch(r'patch_embed\.norm\.(.+)', key)
    if m:
        return f'backbone.downsample_layers.0.bn.{m[1]}'
    m = re.fullmatch(r'norm(\d+)\.(.+)', key)
    if m and int(m[1]) % 2 == 0:  # fork_feat output norms: norm0/2/4/6
        return f'backbone.norm{int(m[1]) // 2}.{m[2]}'
    m = re.fullmatch(r'stages\.(\d+)\.(reduction|norm)\.(.+)', key)
    if m and int(m[1]) % 2 == 1:  # merging layers sit at odd positions
        layer = 'conv' if m[2] == 'reduction' else 'bn'
        return f'backbone.downsample_layers.{(int(m[1]) + 1) // 2}.' \
               f'{layer}.{m[3]}'
    m = re.fullmatch(r'stages\.(\d+)\.blocks\.(\d+)\.(.+)', key)
    if m and int(m[1]) % 2 == 0:
        for pattern, template in _BLOCK_RULES:
            rest, n = re.subn('^' + pattern, template, m[3])
            if n:
                return f'backbone.stages.{int(m[1]) // 2}.{m[2]}.{rest}'
    return None


def detect_official_arch(state):
    """Name the variant of a reference state dict from its shapes.

    Returns:
        tuple[str, bool, bool]: the arch name, whether it has the
        classification head, whether it has the detection output norms.
    """
    if 'patch_embed.proj.weight' not in state:
        raise ValueError('not a PartialNet reference state dict: '
                         '"patch_embed.proj.weight" is missing')
    embed_dim = state['patch_embed.proj.weight'].shape[0]
    depths = []
    for stage in range(0, 8, 2):
        blocks = {int(m[1]) for k in state
                  for m in [re.match(rf'stages\.{stage}\.blocks\.(\d+)\.', k)]
                  if m}
        depths.append(max(blocks) + 1 if blocks else 0)
    use_pat_sp = any('.mlp.4.' in k for k in state)
    for name, arch in PartialNet.arch_zoo.items():
        if (arch['embed_dim'], arch['depths'],
                arch['use_pat_sp']) == (embed_dim, depths, use_pat_sp):
            return (name, 'head.weight' in state,
                    any(re.fullmatch(r'norm\d+\..+', k) for k in state))
    raise ValueError(
        f'no PartialNet variant has embed_dim={embed_dim}, depths={depths}, '
        f'PAT_sp={use_pat_sp}; known variants: '
        + ', '.join(f'{n} ({a["embed_dim"]}, {a["depths"]})'
                    for n, a in PartialNet.arch_zoo.items()))


def expected_state_shapes(arch, with_head, with_out_norm, num_classes=1000):
    """Keys and shapes of this package's model for a variant: a freshly
    built backbone (with the detection output norms where asked) and
    classification head."""
    backbone = PartialNet(arch, out_indices=(0, 1, 2, 3),
                          out_norm=with_out_norm)
    shapes = {f'backbone.{k}': tuple(v.shape)
              for k, v in backbone.state_dict().items()}
    if with_head:
        head = heads.PartialNetClsHead(
            num_classes, backbone.channels[-1],
            act_cfg=PartialNet.arch_zoo[arch]['act_cfg'])
        shapes.update({f'head.{k}': tuple(v.shape)
                       for k, v in head.state_dict().items()})
    return shapes


def convert_official_state_dict(state, arch=None):
    """Convert a reference state dict; every tensor must map and fit.

    Args:
        state (dict): A (possibly wrapped) reference state dict.
        arch (str, optional): The variant the caller expects; a state dict of
            another variant is refused.

    Returns:
        tuple[OrderedDict, dict]: our state dict, and metadata (``arch``,
        ``with_head``, ``with_out_norm``, ``num_classes``).
    """
    state = unwrap_official_state_dict(state)
    found, with_head, with_out_norm = detect_official_arch(state)
    if arch is not None and arch.lower() != found:
        raise ConversionError(f'the checkpoint holds PartialNet-{found}, not '
                              f'the requested PartialNet-{arch.lower()}')
    num_classes = state['head.weight'].shape[0] if with_head else None
    expected = expected_state_shapes(found, with_head, with_out_norm,
                                     num_classes or 1000)
    converted, unmapped, mismatched = OrderedDict(), [], {}
    for key, value in state.items():
        new_key = rename_official_key(key)
        if new_key is None or new_key not in expected:
            unmapped.append(key)
        elif tuple(value.shape) != expected[new_key]:
            mismatched[new_key] = (f'{key} -> {new_key}: {tuple(value.shape)}'
                                   f' vs expected {expected[new_key]}')
        else:
            converted[new_key] = value
    missing = sorted(set(expected) - set(converted) - set(mismatched))
    mismatched = list(mismatched.values())
    if unmapped or mismatched or missing:
        lines = [f'PartialNet-{found} state dict did not convert completely:']
        for title, items in (('not mapped', unmapped),
                             ('wrong shape', mismatched),
                             ('missing', missing)):
            if items:
                lines.append(f'  {title} ({len(items)}):')
                lines += [f'    {item}' for item in items]
        raise ConversionError('\n'.join(lines))
    meta = dict(arch=found, with_head=with_head, with_out_norm=with_out_norm,
                num_classes=num_classes)
    return converted, meta


def load_official_checkpoint(path, trust_pickle=False):
    """Read a reference checkpoint with mmengine's loaders (local files,
    ``http(s)://``, ``s3://``, ...).

    Args:
        path (str): The checkpoint.
        trust_pickle (bool): Unpickle arbitrary Python objects (e.g. the
            training arguments the reference script stores); only for files
            you trust. Otherwise ``torch.load(weights_only=True)`` reads it.

    Raises:
        CheckpointError: It is missing, truncated or unreadable.
        ConversionError: It holds Python objects and ``trust_pickle`` is
            off.
    """
    if not trust_pickle:
        try:
            return load_checkpoint_file(path)
        except CheckpointError as err:
            if not isinstance(err.__cause__, pickle.UnpicklingError):
                raise
            raise ConversionError(
                f'{path!r} holds Python objects besides tensors, which are '
                'not loaded by default because unpickling can run code '
                f'({err}). If you trust the file, re-run with '
                '--trust-pickle.') from None
    check_checkpoint_file(path)
    try:
        with get_local_path(path) as local:
            return torch.load(local, map_location='cpu', weights_only=False)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
        raise CheckpointError(f'checkpoint {path!r} cannot be read: '
                              f'{err}') from err


def convert_official_checkpoint(src, dst, arch=None, overwrite=False,
                                trust_pickle=False):
    """Convert the reference checkpoint ``src`` and write it to ``dst``.

    Nothing is written unless every tensor maps (see
    :func:`convert_official_state_dict`); ``dst`` is written through a
    temporary file, so no half-written file is left behind.

    Args:
        src (str): The reference checkpoint (any path mmengine reads).
        dst (str): Where to write ``{'state_dict', 'meta'}``.
        arch (str, optional): Fail unless ``src`` is this variant.
        overwrite (bool): Replace ``dst`` if it exists.
        trust_pickle (bool): See :func:`load_official_checkpoint`.

    Returns:
        tuple[OrderedDict, dict]: The converted state dict and the written
        meta (``converted_from`` is the base name of ``src``: no local
        paths are written).
    """
    if osp.exists(dst) and not overwrite:
        raise ConversionError(f'{dst!r} exists; pass --overwrite to '
                              'replace it')
    state, meta = convert_official_state_dict(
        load_official_checkpoint(src, trust_pickle), arch=arch)
    meta.update(converted_from=osp.basename(src),
                mmpartial_version=__version__)
    save_checkpoint(state, meta, dst)
    return state, meta


def describe_conversion(state, meta, dst):
    """What :func:`convert_official_checkpoint` wrote, in one line."""
    parts = ['backbone'] + (['head'] if meta['with_head'] else []) + \
        (['output norms'] if meta['with_out_norm'] else [])
    return (f'PartialNet-{meta["arch"]}: {len(state)} tensors converted '
            f'({", ".join(parts)}) -> {dst}')
