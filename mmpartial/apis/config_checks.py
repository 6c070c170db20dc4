"""Catch inconsistent PartialNet configs before anything is built.

A wrong FPN width or head width otherwise surfaces as a shape error deep
inside a forward pass, minutes into a run; here it is an error naming the
config key and the value it should have.
"""
from mmpartial.models.backbones.dpconv_cfg import parse_dpconv_cfg
from mmpartial.models.backbones.partialnet import PartialNet


class ConfigError(ValueError):
    """An inconsistent config, naming the key to fix."""


def _is_partialnet(type_name):
    return isinstance(type_name, str) and \
        type_name.split('.')[-1] == 'PartialNet'


def partialnet_out_channels(backbone):
    """Channels of the outputs a ``PartialNet`` config dict produces."""
    try:
        arch = PartialNet.parse_arch(backbone.get('arch', 't0'))
    except (ValueError, TypeError) as err:
        raise ConfigError(f'model.backbone.arch: {err}') from None
    channels = [arch['embed_dim'] * 2**i for i in range(4)]
    indices = backbone.get('out_indices', -1)
    indices = [indices] if isinstance(indices, int) else list(indices)
    for i in indices:
        if not -4 <= i < 4:
            raise ConfigError(f'model.backbone.out_indices: entry {i} is out '
                              'of range; valid indices are 0-3')
    return channels, [channels[i % 4] for i in indices]


def check_partialnet_config(cfg):
    """Raise :class:`ConfigError` if the model config is inconsistent."""
    model = cfg.get('model') or {}
    backbone = model.get('backbone') or {}
    if not _is_partialnet(backbone.get('type')):
        return
    channels, outputs = partialnet_out_channels(backbone)
    name = backbone.get('arch', 't0')
    dpconv = backbone.get('dpconv')
    if dpconv is not None:
        try:
            parse_dpconv_cfg(dpconv)
        except (ValueError, TypeError) as err:
            raise ConfigError(f'model.backbone.dpconv: {err}') from None
        n_div = backbone.get('n_div', 4)
        if n_div < 1 or n_div & (n_div - 1):
            raise ConfigError(
                f'model.backbone.n_div is {n_div}, but DPConv splits '
                'channels by halving, so n_div must be a power of two '
                '(e.g. 4) when model.backbone.dpconv is set')
    neck = model.get('neck')
    if isinstance(neck, dict) and 'in_channels' in neck:
        given = list(neck['in_channels'])
        if given != outputs:
            raise ConfigError(
                f'model.neck.in_channels is {given}, but PartialNet '
                f'arch={name!r} with out_indices '
                f'{backbone.get("out_indices", -1)} outputs {outputs} '
                f'channels; set model.neck.in_channels={outputs}')
    if not neck:
        check_segmentation_heads(model, outputs, name,
                                 backbone.get('out_indices', -1))
    head = model.get('head')
    if isinstance(head, dict) and not neck and 'in_channels' in head \
            and head['in_channels'] != outputs[-1]:
        raise ConfigError(
            f'model.head.in_channels is {head["in_channels"]}, but '
            f'PartialNet arch={name!r} ends with {outputs[-1]} channels; set '
            f'model.head.in_channels={outputs[-1]}')


def _head_dicts(model, key):
    """(config key, head dict) of ``model[key]``: one head or a list."""
    heads = model.get(key)
    if isinstance(heads, dict):
        return [(f'model.{key}', heads)]
    if isinstance(heads, (list, tuple)):
        return [(f'model.{key}[{i}]', head) for i, head in enumerate(heads)
                if isinstance(head, dict)]
    return []


def check_segmentation_heads(model, outputs, name, out_indices):
    """mmseg heads that read the backbone directly (no neck): each
    ``in_channels`` must be the widths of the outputs ``in_index`` picks.

    ``decode_head`` (UperNet's ``UPerHead``: all four stages) and
    ``auxiliary_head`` (an ``FCNHead`` on stage 3, or a list of heads);
    ``in_index`` indexes the backbone's outputs, -1 by default as in
    mmseg's ``BaseDecodeHead``.
    """
    for key, head in _head_dicts(model, 'decode_head') + \
            _head_dicts(model, 'auxiliary_head'):
        if 'in_channels' not in head:
            continue
        in_index = head.get('in_index', -1)
        indices = list(in_index) if isinstance(in_index, (list, tuple)) \
            else [in_index]
        for i in indices:
            if not -len(outputs) <= i < len(outputs):
                raise ConfigError(
                    f'{key}.in_index has entry {i}, but PartialNet '
                    f'arch={name!r} with out_indices {out_indices} returns '
                    f'{len(outputs)} outputs (valid indices 0-'
                    f'{len(outputs) - 1})')
        expected = [outputs[i] for i in indices]
        if not isinstance(in_index, (list, tuple)):
            expected = expected[0]
        given = head['in_channels']
        given = list(given) if isinstance(given, (list, tuple)) else given
        if given != expected:
            raise ConfigError(
                f'{key}.in_channels is {given}, but PartialNet '
                f'arch={name!r} with out_indices {out_indices} gives '
                f'{expected} channels at in_index {in_index}; set '
                f'{key}.in_channels={expected}')


def partialnet_backbone_problem(cfg, path):
    """Why ``cfg`` (loaded from ``path``) has no PartialNet backbone, or
    None when it has one. Looked at before anything is built.

    The tools that only make sense for PartialNet (benchmark, deploy,
    export) raise their own error types with this text.
    """
    model = cfg.get('model') or {}
    backbone = model.get('backbone')
    if not backbone:
        return (f'config {path!r} has no model.backbone (model type '
                f'{model.get("type")!r}); a PartialNet backbone is needed')
    kind = backbone.get('type')
    name = getattr(kind, '__name__', str(kind))
    if not _is_partialnet(name):
        return (f'config {path!r} has a {name} backbone '
                f'(model.backbone.type={name!r}), not PartialNet')
    return None


def built_backbone_problem(model):
    """Why a built model has no PartialNet ``backbone``, or None."""
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, PartialNet):
        return None
    return (f'the model built from the config ({type(model).__name__}) has '
            f'a {type(backbone).__name__} backbone, not PartialNet')
