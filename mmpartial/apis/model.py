"""Building the model of a config, with or without a checkpoint.

The one way every tool that needs a model outside a runner gets it
(benchmark, reparameterisation, export, inference, DPConv report), as
mmdet's ``init_detector`` and mmpretrain's ``get_model`` do for theirs.
"""
import importlib

from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_state_dict
from mmengine.utils import import_modules_from_strings

from mmpartial.utils.checkpoint import check_state_dict_fits, read_checkpoint
from .config import load_config


class ModelBuildError(ValueError):
    """A config whose model cannot be built, named."""


def build_model(cfg):
    """Build ``cfg.model`` with the registry of the config's default scope.

    Returns:
        nn.Module: The model, as built (no weights initialised or loaded).
    """
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    scope = cfg.get('default_scope')
    if not scope:
        raise ModelBuildError(
            f'config {cfg.filename!r} has no default_scope (mmpretrain, '
            'mmdet or mmseg), so its model cannot be built')
    init_default_scope(scope)
    try:
        registry = importlib.import_module(f'{scope}.registry').MODELS
    except ImportError as err:
        raise ModelBuildError(f'no model registry for default_scope '
                              f'{scope!r}: {err}') from err
    return registry.build(cfg.model)


def load_model_checkpoint(model, checkpoint, strict=False):
    """Load a checkpoint file into ``model`` after checking that it fits.

    Returns:
        dict: The checkpoint's meta.
    """
    state, meta = read_checkpoint(checkpoint)
    check_state_dict_fits(state, model, checkpoint, strict=strict)
    load_state_dict(model, state, strict=strict, logger='silent')
    return meta


def init_model(config, checkpoint=None, cfg_options=None, device='cpu'):
    """The model of a config file, in eval mode.

    Args:
        config (str | Config): A config file, or a loaded config.
        checkpoint (str, optional): Weights to load (any path mmengine's
            loaders read); without one the model gets its initialisation
            (``init_weights``), as at the start of training.
        cfg_options (dict, optional): Overrides, as ``--cfg-options``.
        device (str): Where the model goes. Defaults to ``'cpu'``.

    Returns:
        nn.Module: The model, with ``model.cfg`` set to its config.
    """
    cfg = load_config(config, cfg_options) if isinstance(config, str) \
        else config
    model = build_model(cfg)
    if checkpoint is None:
        model.init_weights()
    else:
        load_model_checkpoint(model, checkpoint)
    model.cfg = cfg
    return model.to(device).eval()
