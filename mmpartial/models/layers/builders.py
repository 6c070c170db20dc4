"""Tiny norm / activation builders.

They keep the layers free of mmcv (whose ``build_norm_layer`` would do the
same), so the backbone runs where mmcv's ops are not built.
"""
import torch.nn as nn

_NORMS = {'BN': nn.BatchNorm2d, 'SyncBN': nn.SyncBatchNorm}
_ACTS = {'ReLU': nn.ReLU, 'GELU': nn.GELU, 'SiLU': nn.SiLU,
         'Hardswish': nn.Hardswish}


def build_norm(cfg, num_features):
    """Build a 2D norm layer from ``dict(type='BN' | 'SyncBN', ...)``.

    ``requires_grad=False`` in the dict freezes the affine parameters, as in
    mmcv's ``build_norm_layer``. Other keys are passed to the layer.
    """
    cfg = dict(cfg or dict(type='BN'))
    norm_type = cfg.pop('type')
    if norm_type not in _NORMS:
        raise ValueError(f'norm_cfg type {norm_type!r} is not supported; '
                         f'choose one of {sorted(_NORMS)}')
    requires_grad = cfg.pop('requires_grad', True)
    layer = _NORMS[norm_type](num_features, **cfg)
    for param in layer.parameters():
        param.requires_grad = requires_grad
    return layer


def build_act(cfg):
    """Build an activation from ``dict(type='ReLU' | 'GELU' | ...)``."""
    cfg = dict(cfg)
    act_type = cfg.pop('type')
    if act_type not in _ACTS:
        raise ValueError(f'act_cfg type {act_type!r} is not supported; '
                         f'choose one of {sorted(_ACTS)}')
    return _ACTS[act_type](**cfg)
