"""Turning a trained PartialNet model into its deploy form, on disk.

What ``tools/reparameterize.py`` does (and ``tools/export_onnx.py`` builds
on): build the model of an mmpretrain or mmdet config, load a train-form
checkpoint, fold the backbone (``PartialNet.switch_to_deploy``) and save
the result, a checkpoint that loads strictly into the same config with
``model.backbone.deploy=True``.
"""
import os.path as osp

import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmpartial.version import __version__
from mmpartial.models.layers import DropPath, PATSpatial
from mmpartial.models.layers.conv_bn import ChannelAffine
from mmpartial.utils.checkpoint import (check_state_dict_fits, read_checkpoint,
                                        save_checkpoint)
from .config import load_config
from .config_checks import built_backbone_problem, partialnet_backbone_problem
from .model import build_model


class DeployError(ValueError):
    """A config or checkpoint that cannot be reparameterised, named."""


def load_partialnet_config(path, cfg_options=None):
    """Load a config and check that its model has a PartialNet backbone
    (before anything is built).

    Args:
        path (str): Config file of mmpretrain or mmdet.
        cfg_options (dict, optional): Overrides, as ``--cfg-options`` gives
            them.

    Raises:
        FileNotFoundError: There is no such config.
        ConfigError: The config is inconsistent.
        DeployError: Its backbone is not PartialNet.

    Returns:
        Config: The config.
    """
    cfg = load_config(path, cfg_options)
    problem = partialnet_backbone_problem(cfg, path)
    if problem:
        raise DeployError(f'{problem}: there is nothing to reparameterise')
    return cfg


def build_partialnet_model(cfg):
    """The model of a config from :func:`load_partialnet_config`, as built
    (no weights loaded), in eval mode, on the CPU."""
    model = build_model(cfg)
    problem = built_backbone_problem(model)
    if problem:
        raise DeployError(problem)
    return model.eval()


def is_deploy_state_dict(state_dict, meta=None):
    """Whether a checkpoint holds a PartialNet in deploy form.

    Either its meta says so (:func:`reparameterize` writes
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


def already_deployed_error(path):
    return DeployError(
        f'checkpoint {path!r} is already in deploy form (reparameterised'
        ', its norms folded): there is nothing left to fold. Load it '
        'with the config and model.backbone.deploy=True, e.g. '
        '`tools/test.py CONFIG CHECKPOINT --cfg-options '
        'model.backbone.deploy=True`')


def load_train_checkpoint(model, path, state=None, meta=None):
    """Load a train-form checkpoint strictly into ``model``.

    Args:
        model (nn.Module): The train-form model.
        path (str): The checkpoint (any path mmengine's loaders read).
        state, meta (dict, optional): The checkpoint's contents, where the
            caller has read them already.

    Returns:
        dict: The checkpoint's meta.

    Raises:
        DeployError: The checkpoint is in deploy form already.
        CheckpointError: It cannot be read, or does not fit the model
            exactly (the message lists a few mismatching keys).
    """
    if state is None:
        state, meta = read_checkpoint(path)
    if is_deploy_state_dict(state, meta):
        raise already_deployed_error(path)
    check_state_dict_fits(state, model, path, strict=True)
    model.load_state_dict(state, strict=True)
    return dict(meta or {})


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
        dict: The new meta: the checkpoint's, with ``deploy=True``, the
        counts of :func:`switch_backbone_to_deploy` and the names of the
        files it came from (base names: no local paths are written).
    """
    if osp.exists(out) and not overwrite:
        raise DeployError(f'{out!r} exists; pass --overwrite to replace it')
    cfg = load_partialnet_config(config, cfg_options)
    # Always start from the train form, whatever the config says.
    cfg.model.backbone.deploy = False
    model = build_partialnet_model(cfg)
    meta = load_train_checkpoint(model, checkpoint)
    counts = switch_backbone_to_deploy(model)
    meta.update(counts, deploy=True,
                reparameterized_from=osp.basename(checkpoint),
                config=osp.basename(config), mmpartial_version=__version__)
    save_checkpoint(model.state_dict(), meta, out)
    return meta


def describe_reparameterization(meta, out):
    """What :func:`reparameterize` did, in two lines for a terminal."""
    return (f'folded {meta["folded_layers"]} layers '
            f'({meta["folded_norms"]} norm layers into convolutions/'
            f'linears, {meta["merged_convs"]} PAT_sp 1x1 convolutions into '
            f'the MLPs), {meta["affine_norms"]} norms after a gate kept as '
            f'a channel scale and shift, {meta["removed_dropouts"]} '
            f'dropout/drop-path layers removed -> {out}\n'
            'load it with: --cfg-options model.backbone.deploy=True')
