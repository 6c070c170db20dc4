"""A PartialNet refuses tensors of its own that do not fit it.

mmengine loads with ``strict=False`` and only warns about a tensor of
another shape, so a checkpoint of another variant (a T0 detector's
``load_from`` in a T2 config) would leave the backbone half untrained while
the run goes on. The check sits in the backbone's own load hook, so it
holds however the tensors arrive: ``load_from``, ``resume``, ``init_cfg``,
``load_state_dict``, a DDP-wrapped model or not, any runner. Only the
backbone's own keys are compared: heads that differ on purpose (fine-tuning
on other classes) load as mmengine allows.
"""
import re

from mmpartial.utils.checkpoint import CheckpointError

_BLOCK = re.compile(r'stages\.(\d+)\.(\d+)\.')
_STEM = 'downsample_layers.0.'


def guess_variant(state, arch_zoo):
    """The variant of ``arch_zoo`` whose width and depths ``state`` has
    (keys relative to the backbone), or a description of its shape."""
    depths = [0] * 4
    for key in state:
        match = _BLOCK.match(key)
        if match and int(match.group(1)) < 4:
            stage, block = map(int, match.groups())
            depths[stage] = max(depths[stage], block + 1)
    width = next((value.shape[0] for key, value in state.items()
                  if key.startswith(_STEM) and key.endswith('weight')
                  and getattr(value, 'dim', lambda: 0)() == 4), None)
    for name, arch in arch_zoo.items():
        if arch['embed_dim'] == width and list(arch['depths']) == depths:
            return f'PartialNet-{name.upper()}'
    return f'a PartialNet with embed_dim={width}, depths={depths}'


def _adapting_prefixes(backbone):
    # Layers with a load hook of their own (a deploy-form DPConv reads its
    # learned width from the checkpoint) check and resize their tensors
    # themselves; their shapes may differ from the model's until then.
    return tuple(f'{name}.' for name, module in backbone.named_modules()
                 if name and module._load_state_dict_pre_hooks)


def refuse_misfit(backbone, state_dict, prefix, *args):
    """``load_state_dict`` pre-hook: raise :class:`CheckpointError` when a
    tensor of the backbone's has another shape, or a stage another number
    of blocks, naming the keys, the shapes and the variant the checkpoint
    looks like."""
    incoming = {key[len(prefix):]: value for key, value in state_dict.items()
                if key.startswith(prefix)}
    if not incoming:
        return
    own = backbone.state_dict(keep_vars=True)
    skip = _adapting_prefixes(backbone)
    resized = [f'{prefix}{key}: checkpoint {tuple(value.shape)}, model '
               f'{tuple(own[key].shape)}'
               for key, value in incoming.items()
               if key in own and not key.startswith(skip)
               and hasattr(value, 'shape')
               and tuple(value.shape) != tuple(own[key].shape)]
    blocks = _block_prefixes(own)
    extra_blocks = sorted({match.group(0)[:-1]
                           for match in map(_BLOCK.match, incoming)
                           if match and match.group(0) not in blocks})
    if not resized and not extra_blocks:
        return
    problems = []
    if resized:
        problems.append(f'{len(resized)} tensors differ in shape ('
                        f'{"; ".join(resized[:3])}'
                        f'{"; ..." if len(resized) > 3 else ""})')
    if extra_blocks:
        problems.append(f'it has blocks the model lacks '
                        f'({", ".join(extra_blocks[:3])}'
                        f'{", ..." if len(extra_blocks) > 3 else ""})')
    mine = guess_variant(own, backbone.arch_zoo)
    theirs = guess_variant(incoming, backbone.arch_zoo)
    raise CheckpointError(
        f'the checkpoint does not fit this {mine} backbone '
        f'(under {prefix!r}): {"; ".join(problems)}. It looks like a '
        f'checkpoint of {theirs}: pick the config of that variant, or a '
        'checkpoint of this one.')


def _block_prefixes(own):
    return {match.group(0) for match in map(_BLOCK.match, own) if match}
