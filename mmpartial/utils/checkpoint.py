"""Reading checkpoint files and checking that they fit a model.

One place for what every entry point needs: a file written half by a
killed run is refused before anything is unpickled; a checkpoint is read
through mmengine's loaders (local files, ``http(s)://``, ``s3://``, ...);
the nesting of the many checkpoint formats (``state_dict``, ``model``, a
DDP ``module.`` prefix) is undone once; and a checkpoint whose tensors do
not fit the model is an error naming the file, where mmengine would only
warn and leave those tensors untrained.
"""
import glob
import os
import os.path as osp
import pickle
import re
import zipfile

import torch
from mmengine.model import is_model_wrapper
from mmengine.runner import CheckpointLoader

from .paths import is_local_path


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used, named in the message."""


def check_checkpoint_file(path):
    """Raise :class:`CheckpointError` unless ``path`` is a complete
    checkpoint written by ``torch.save``.

    ``torch.save`` writes a zip archive whose central directory comes last,
    so a file cut short (a run killed while saving, a partial download) is
    not a valid zip: this is detected without unpickling anything. Remote
    paths (``http://``, ``s3://``, ...) are left to their loader.
    """
    if not is_local_path(path):
        return
    if not osp.isfile(path):
        raise CheckpointError(f'checkpoint file {path!r} does not exist')
    if osp.getsize(path) == 0:
        raise CheckpointError(f'checkpoint file {path!r} is empty')
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f'checkpoint file {path!r} is truncated or not a PyTorch '
            'checkpoint (no complete zip archive); delete it or pick another '
            'checkpoint')
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise CheckpointError(f'checkpoint file {path!r} is corrupt: {err}')
    if bad is not None:
        raise CheckpointError(f'checkpoint file {path!r} is corrupt: member '
                              f'{bad!r} fails its CRC check')


def find_latest_complete_checkpoint(work_dir):
    """The newest complete ``*.pth`` in ``work_dir``, or None.

    Unlike mmengine's ``last_checkpoint`` pointer, this skips files that a
    killed run left half-written.
    """
    candidates = sorted(glob.glob(osp.join(work_dir, '*.pth')),
                        key=os.path.getmtime, reverse=True)
    for path in candidates:
        try:
            check_checkpoint_file(path)
        except CheckpointError:
            continue
        return path
    return None


def load_checkpoint_file(path, map_location='cpu'):
    """Read a checkpoint with mmengine's loaders (any scheme they know).

    Raises:
        CheckpointError: The file is missing, truncated, or holds Python
            objects that ``torch.load(weights_only=True)`` refuses.
    """
    check_checkpoint_file(path)
    try:
        return CheckpointLoader.load_checkpoint(path,
                                                map_location=map_location)
    except pickle.UnpicklingError as err:
        lines = str(err).splitlines()
        why = next((line.strip() for line in lines if 'Unsupported' in line),
                   lines[0] if lines else '')
        raise CheckpointError(
            f'checkpoint {path!r} cannot be loaded safely (torch.load with '
            f'weights_only=True): {why}') from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(
            f'checkpoint {path!r} cannot be read: {err}') from err


def unwrap_state_dict(checkpoint,
                      containers=('state_dict', 'model', 'module'),
                      prefixes=('module.', )):
    """The flat ``{name: tensor}`` dict inside a loaded checkpoint.

    mmengine stores the weights under ``state_dict``, other trainers under
    ``model`` (or bare); DDP adds ``module.`` to every key.

    Args:
        checkpoint (dict): What ``torch.load`` returned.
        containers (Sequence[str]): Keys whose dict value holds the
            weights, tried in order.
        prefixes (Sequence[str]): Key prefixes to strip, in order.
    """
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'a checkpoint must hold a dict, got '
                              f'{type(checkpoint).__name__}')
    for key in containers:
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    state = {}
    for key, value in checkpoint.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
        state[key] = value
    return state


def read_checkpoint(path, map_location='cpu'):
    """The ``(state_dict, meta)`` of a checkpoint file."""
    checkpoint = load_checkpoint_file(path, map_location)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{path!r} does not hold a state dict')
    return unwrap_state_dict(checkpoint), dict(checkpoint.get('meta') or {})


def unwrap_model(model):
    """The model inside a DDP (or other mmengine) wrapper."""
    return model.module if is_model_wrapper(model) else model


def check_state_dict_fits(state, model, source, prefix='', strict=False,
                          ignore_keys=()):
    """Raise :class:`CheckpointError` unless ``state`` fits ``model``.

    A tensor the model also has must have the model's shape; and at least
    one tensor must match by name (a checkpoint of another model, or keys
    carrying a wrapper's prefix, would otherwise load nothing silently).
    With ``strict``, missing and unexpected keys are errors too.

    Args:
        state (dict): Flat state dict (see :func:`unwrap_state_dict`).
        model (nn.Module): The model, wrapped or not.
        source (str): The file, named in the message.
        prefix (str): Only keys starting with this are compared, the prefix
            removed (``'backbone.'`` for a classifier's backbone).
        strict (bool): Keys must match exactly.
        ignore_keys (Sequence[str]): Regular expressions of model keys not
            to compare (e.g. a classification layer that is replaced on
            purpose when fine-tuning on other classes).
    """
    own = unwrap_model(model).state_dict()
    ignored = [re.compile(pattern) for pattern in ignore_keys]
    incoming = {key[len(prefix):]: value for key, value in state.items()
                if key.startswith(prefix)}
    incoming = {key: value for key, value in incoming.items()
                if not any(p.search(key) for p in ignored)}
    resized = [f'{key}: checkpoint {tuple(value.shape)}, model '
               f'{tuple(own[key].shape)}'
               for key, value in incoming.items()
               if key in own and hasattr(value, 'shape')
               and tuple(value.shape) != tuple(own[key].shape)]
    matched = [key for key in incoming if key in own]
    problems = []
    if resized:
        problems.append(f'{len(resized)} tensors differ in shape (e.g. '
                        f'{"; ".join(resized[:2])}); is it a checkpoint of '
                        'another PartialNet variant?')
    if not matched:
        example = next(iter(state), None)
        problems.append(
            f'none of its {len(incoming)} tensors'
            f'{f" under {prefix!r}" if prefix else ""} has a name of the '
            f'model (checkpoint key e.g. {example!r}, model key e.g. '
            f'{next(iter(own), None)!r})')
    if strict:
        missing = [key for key in own if key not in incoming]
        unexpected = [key for key in incoming if key not in own]
        if missing or unexpected:
            problems.append(f'{len(missing)} missing keys {missing[:3]}, '
                            f'{len(unexpected)} unexpected keys '
                            f'{unexpected[:3]}')
    if problems:
        raise CheckpointError(f'checkpoint {source!r} does not fit the '
                              f'model: {" ".join(problems)}')


def save_checkpoint(state_dict, meta, out):
    """Write ``{'state_dict', 'meta'}`` to ``out`` through a temporary file,
    so that no half-written ``out`` is ever left behind."""
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    tmp = out + '.tmp'
    try:
        torch.save(dict(state_dict=state_dict, meta=meta), tmp)
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
