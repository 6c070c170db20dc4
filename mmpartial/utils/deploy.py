"""Turning a trained PartialNet model into its deploy form, on disk.

Used by ``tools/reparameterize.py`` (and ``tools/export_onnx.py``): build
the model of an mmpretrain or mmdet config, load a train-form checkpoint,
fold the backbone (``PartialNet.switch_to_deploy``) and save the result, a
checkpoint that loads strictly into the same config with
``model.backbone.deploy=True``.
"""
import os
import os.path as osp
import re

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm


class DeployError(ValueError):
    """A config or checkpoint that cannot be reparameterised, named."""


def load_model_config(path, cfg_options=None):
    """Load a config and check that it builds a model with a PartialNet
    backbone (before anything is built).

    Args:
        path (str): Config file of mmpretrain or mmdet.
        cfg_options (dict, optional): Overrides, as ``--cfg-options`` gives
            them.

    Returns:
        Config: The config.
    """
    from mmpartial.engine.config_checks import partialnet_backbone_problem
    from mmpartial.engine.runner_setup import load_config
    if not osp.isfile(path):
        raise DeployError(f'config file {path!r} does not exist')
    cfg = load_config(path, cfg_options)
    problem = partialnet_backbone_problem(cfg, path)
    if problem:
        raise DeployError(f'{problem}: there is nothing to reparameterise')
    if not cfg.get('default_scope'):
        raise DeployError(f'config {path!r} has no default_scope (mmpretrain '
                          'or mmdet), so its model cannot be built')
    return cfg


def build_model(cfg):
    """Build ``cfg.model`` with the registry of the config's default scope.

    Returns:
        nn.Module: The model, in eval mode, on the CPU.
    """
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.utils import import_modules_from_strings

    from mmpartial.engine.config_checks import built_backbone_problem
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    problem = built_backbone_problem(model)
    if problem:
        raise DeployError(problem)
    return model.eval()


def read_checkpoint(path):
    """The ``(state_dict, meta)`` of a checkpoint file (mmengine's format,
    a bare state dict, or one wrapped in ``model``/``module``).

    A ``module.`` prefix (a model saved inside DDP) is stripped.
    """
    from mmengine.runner import CheckpointLoader

    from mmpartial.utils.checkpoint_files import (CheckpointError,
                                                  check_checkpoint_file)
    try:
        check_checkpoint_file(path)
    except CheckpointError as err:
        raise DeployError(str(err)) from None
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise DeployError(f'{path!r} does not hold a state dict')
    meta = checkpoint.get('meta') or {}
    for key in ('state_dict', 'model', 'module'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    state = {re.sub(r'^module\.', '', k): v for k, v in checkpoint.items()}
    return state, dict(meta)


def is_deploy_state_dict(state_dict, meta=None):
    """Whether a checkpoint holds a PartialNet in deploy form.

    Either its meta says so (``tools/reparameterize.py`` writes
    ``deploy=True``), or its MLPs have biases where the train form has a
    BN after ``fc1``.
    """
    if (meta or {}).get('deploy'):
        return True
    keys = list(state_dict)
    folded = any(k.endswith('mlp.fc1.bias') for k in keys)
    trained = any(k.endswith('mlp.norm.running_mean') for k in keys)
    return folded and not trained


def deploy_layer_counts(module):
    """What :meth:`PartialNet.switch_to_deploy` folds or removes, counted.

    Compare the counts of a model before and after the switch.

    Returns:
        dict: ``norms`` (BatchNorms and affine LayerNorms: folded into a
        neighbouring convolution or linear layer, or turned into a
        per-channel scale and shift), ``pat_sp_convs`` (PAT_sp 1x1
        convolutions still to merge into the MLP's ``fc2``) and ``dropouts``
        (active dropout and drop-path layers).
    """
    from mmpartial.models.layers import DropPath, PATSpatial
    counts = dict(norms=0, pat_sp_convs=0, dropouts=0)
    for layer in module.modules():
        if isinstance(layer, _BatchNorm) or (
                isinstance(layer, nn.LayerNorm) and layer.elementwise_affine):
            counts['norms'] += 1
        elif isinstance(layer, PATSpatial) and not layer.linear_merged:
            counts['pat_sp_convs'] += 1
        elif isinstance(layer, (nn.Dropout, DropPath)) and (
                getattr(layer, 'p', 0) > 0
                or getattr(layer, 'drop_prob', 0) > 0):
            counts['dropouts'] += 1
    return counts


def switch_backbone_to_deploy(model):
    """Switch ``model.backbone`` to deploy form; count what was folded.

    Returns:
        dict: ``folded_layers`` (norm layers and convolutions merged into
        another layer), ``folded_norms``, ``merged_convs``,
        ``affine_norms`` (norms after a non-linear gate, kept as a
        per-channel scale and shift), ``removed_dropouts``.
    """
    from mmpartial.models.layers.conv_bn import ChannelAffine
    backbone = model.backbone
    before = deploy_layer_counts(backbone)
    backbone.switch_to_deploy()
    after = deploy_layer_counts(backbone)
    affine = sum(isinstance(m, ChannelAffine) for m in backbone.modules())
    norms = before['norms'] - after['norms'] - affine
    merged = before['pat_sp_convs'] - after['pat_sp_convs']
    return dict(folded_layers=norms + merged, folded_norms=norms,
                merged_convs=merged, affine_norms=affine,
                removed_dropouts=before['dropouts'] - after['dropouts'])


def load_train_checkpoint(model, path):
    """Load a train-form checkpoint strictly into ``model``.

    Returns:
        dict: The checkpoint's meta.

    Raises:
        DeployError: The checkpoint is in deploy form already, or does not
            fit the model (the message lists a few mismatching keys).
    """
    state, meta = read_checkpoint(path)
    if is_deploy_state_dict(state, meta):
        raise DeployError(
            f'checkpoint {path!r} is already in deploy form (reparameterised'
            ', its norms folded): there is nothing left to fold. Load it '
            'with the config and model.backbone.deploy=True, e.g. '
            '`tools/test.py CONFIG CHECKPOINT --cfg-options '
            'model.backbone.deploy=True`')
    check_state_dict_fits(model, state, path)
    model.load_state_dict(state, strict=True)
    return meta


def check_state_dict_fits(model, state, path):
    """Raise :class:`DeployError` unless ``state`` has exactly the keys and
    shapes of ``model``'s state dict (naming a few that differ)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    resized = [f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
               for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or resized:
        raise DeployError(
            f'checkpoint {path!r} does not fit the model of the config '
            f'(another variant or model?): {len(missing)} missing keys '
            f'{missing[:3]}, {len(unexpected)} unexpected keys '
            f'{unexpected[:3]}, {len(resized)} of another shape '
            f'{resized[:3]}')


def reparameterize(config, checkpoint, out, cfg_options=None,
                   overwrite=False):
    """Write the deploy form of a trained model.

    Args:
        config (str): mmpretrain (classifier) or mmdet (detector) config
            with a PartialNet backbone.
        checkpoint (str): Train-form checkpoint of that model.
        out (str): Where to write ``{'state_dict', 'meta'}``; written to a
            temporary file first, then moved into place.
        cfg_options (dict, optional): Config overrides.
        overwrite (bool): Replace ``out`` if it exists. Defaults to False.

    Returns:
        dict: The new meta (``deploy=True`` and the counts of
        :func:`switch_backbone_to_deploy`).
    """
    import mmpartial
    if osp.exists(out) and not overwrite:
        raise DeployError(f'{out!r} exists; pass --overwrite to replace it')
    cfg = load_model_config(config, cfg_options)
    # Always start from the train form, whatever the config says.
    cfg.model.backbone.deploy = False
    model = build_model(cfg)
    meta = load_train_checkpoint(model, checkpoint)
    counts = switch_backbone_to_deploy(model)
    meta.update(counts, deploy=True,
                reparameterized_from=osp.abspath(checkpoint),
                config=osp.abspath(config),
                mmpartial_version=mmpartial.__version__)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    tmp = out + '.tmp'
    try:
        torch.save(dict(state_dict=model.state_dict(), meta=meta), tmp)
        os.replace(tmp, out)  # never leave a half-written out behind
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return meta
