"""A DPConv in front of a PAT layer's channel split (PAT_ch, PAT_sf).

With a DPConv, a PAT layer computes ``y = dpconv(x)`` over all ``C``
channels first (a convolution of the learned first ``C * r`` channels, the
rest copied), then splits ``y`` as usual into ``[C // n_div, rest]``: the
first part is taken as it is, the rest goes through the attention branch.
With the DPConv's initial split ``1 / n_div`` that is exactly the plain PAT
layer; the learned ratio can then move above or below ``1 / n_div``.
"""
import torch.nn as nn


def install_dpconv(layer, channels, dpconv=None, conv=None):
    """Set ``layer.dpconv`` and return the module for ``layer.conv``.

    Without ``dpconv``, ``layer.dpconv`` is None (a plain attribute: no
    state-dict keys, no cost) and ``conv`` is returned unchanged (None: the
    layer builds its own 3x3 convolution). With it, the convolution of the
    first part becomes an ``nn.Identity`` and the layer learns to load plain
    checkpoints (see :func:`load_plain_conv`).

    Args:
        layer (nn.Module): The PAT layer, after ``super().__init__()``.
        channels (int): Channels of the layer input.
        dpconv (nn.Module, optional): A ``channels -> channels`` DPConv.
        conv (nn.Module, optional): The layer's ``conv`` argument; it cannot
            be combined with ``dpconv``.

    Returns:
        nn.Module | None: What the layer should use as ``conv``.
    """
    if dpconv is None:
        layer.dpconv = None
        return conv
    if conv is not None:
        raise ValueError('a PAT layer takes either conv (a convolution of the '
                         'first part) or dpconv (over all channels), not '
                         'both')
    if getattr(dpconv, 'channels', channels) != channels:
        raise ValueError(f'dpconv must map the layer\'s {channels} channels '
                         f'to as many, got one over {dpconv.channels}')
    layer.dpconv = dpconv
    layer.register_load_state_dict_pre_hook(load_plain_conv)
    return nn.Identity()


def load_plain_conv(layer, state_dict, prefix, *args):
    """Load a plain PAT layer's ``conv.weight`` into ``dpconv.weight``.

    A plain checkpoint (e.g. an ImageNet backbone trained without DPConv,
    loaded to fine-tune a detector with DPConv) stores the ``n x n`` kernel
    of the convolved first part. It becomes the top-left block of the DPConv
    weight; the rest of the weight and the gates keep their current values.
    With the initial split ``n / C`` the layer then computes what the plain
    one did. Checkpoints that already hold ``dpconv.weight`` are untouched.
    """
    dpconv = layer.dpconv
    key = prefix + 'conv.weight'
    if key not in state_dict or prefix + 'dpconv.weight' in state_dict or \
            not hasattr(dpconv, 'weight'):  # deployed: no full weight
        return
    plain = state_dict[key]
    weight = dpconv.weight.detach().clone()
    n = plain.shape[0]
    if plain.shape != (n, n) + weight.shape[2:] or n > weight.shape[0]:
        return  # not a fitting kernel: left for load_state_dict to report
    weight[:n, :n] = plain
    del state_dict[key]
    state_dict[prefix + 'dpconv.weight'] = weight
    state_dict.setdefault(prefix + 'dpconv.gate', dpconv.gate.detach().clone())
