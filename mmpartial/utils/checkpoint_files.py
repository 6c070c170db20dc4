"""Find and validate checkpoint files in a work directory."""
import glob
import os
import os.path as osp
import zipfile


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used, named in the message."""


def check_checkpoint_file(path):
    """Raise :class:`CheckpointError` unless ``path`` is a complete
    checkpoint written by ``torch.save``.

    ``torch.save`` writes a zip archive whose central directory comes last,
    so a file cut short (a run killed while saving, a partial download) is
    not a valid zip: this is detected without unpickling anything.
    """
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


def check_checkpoint_fits(state_dict_or_path, model, prefix=''):
    """Raise :class:`CheckpointError` if tensors of a checkpoint that the
    model also has differ in shape from the model's.

    mmengine only warns about such tensors and skips them, so a checkpoint
    of another PartialNet variant would silently leave the model untrained.

    Args:
        state_dict_or_path (str | dict): A checkpoint file or a state dict.
        model (nn.Module): The model it is loaded into.
        prefix (str): Only keys starting with this are compared, with the
            prefix removed (``'backbone.'`` for ``init_cfg`` loading).
    """
    path = None
    state = state_dict_or_path
    if isinstance(state, str):
        path = state
        check_checkpoint_file(path)
        import torch
        state = torch.load(path, map_location='cpu', weights_only=True)
    state = state.get('state_dict', state)
    own = model.state_dict()
    bad = []
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name in own and tuple(value.shape) != tuple(own[name].shape):
            bad.append(f'{name}: checkpoint {tuple(value.shape)}, model '
                       f'{tuple(own[name].shape)}')
    if bad:
        where = f'checkpoint {path!r}' if path else 'the checkpoint'
        raise CheckpointError(
            f'{where} does not fit the model of the config: {len(bad)} '
            f'tensors differ in shape (e.g. {"; ".join(bad[:2])}). Is it a '
            'checkpoint of another PartialNet variant?')
