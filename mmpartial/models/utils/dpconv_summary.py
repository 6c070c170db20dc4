"""Finding the DPConv layers of a model and reading their splits."""
from ..layers.dpconv import DPConv
from ..layers.pat_dpconv import PartialSplitLayer


def named_dpconvs(model):
    """Every :class:`DPConv` of ``model`` with its name, in module order.

    Returns:
        list[tuple[str, DPConv]]
    """
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, DPConv)]


def named_dpconv_costs(model):
    """What the complexity term counts, one entry per DPConv, in module
    order: the PAT layer whose split a DPConv learns (its cost is both
    branches' multiply-adds), or the DPConv itself when it stands alone
    (an ``auto_div`` token mixer: the paper's ``nnz(U)``).

    Returns:
        list[tuple[str, nn.Module]]
    """
    owners = {id(module.dpconv): (name, module)
              for name, module in model.named_modules()
              if isinstance(module, PartialSplitLayer)
              and module.dpconv is not None}
    return [owners.get(id(layer), (name, layer))
            for name, layer in named_dpconvs(model)]


def dpconv_summary(model):
    """The current split of every DPConv of ``model``, and totals.

    Returns:
        dict: ``layers``: one dict per layer, ``name`` plus
        :meth:`DPConv.split` (``channels``, ``conv_channels``, ``ratio``,
        ``num_groups``, ``zero_gates``, ``ordered``) and, for a learned PAT
        split, ``kind`` (``'PAT_ch'``/``'PAT_sf'``) and ``macs`` (both
        branches, per 224x224 image for a PartialNet layer, else at its last
        input size);
        ``kind`` is ``'token_mixer'`` and ``macs`` None for a DPConv that
        stands alone. ``totals``: ``num_layers``, ``channels`` and
        ``conv_channels`` (sums), ``ratio`` (their quotient), ``mean_ratio``
        (mean of the layer ratios), ``conv_weights`` (weights of the
        convolutions as they would deploy: ``sum k*k*conv_channels**2``),
        ``full_conv_weights`` (the same for full convolutions over all
        channels) and ``macs`` (sum over the PAT splits). Empty layers and
        zero totals for a model without DPConv.
    """
    layers = []
    conv_weights = full_weights = macs = 0
    costs = named_dpconv_costs(model)
    for (name, layer), (_, owner) in zip(named_dpconvs(model), costs):
        split = layer.split()
        entry = dict(name=name, **split)
        if owner is layer:
            entry.update(kind='token_mixer', macs=None)
        else:
            # At a 224x224 image (the backbone's default), so that the
            # report does not depend on the last forward's size.
            hw = owner.default_hw or owner._last_hw
            cost = owner.complexity(hw).item() if hw else None
            kind = 'PAT_sf' if hasattr(owner, 'num_heads') else 'PAT_ch'
            entry.update(kind=kind, macs=cost)
            macs += cost or 0
        layers.append(entry)
        area = layer.kernel_size**2
        conv_weights += area * split['conv_channels']**2
        full_weights += area * split['channels']**2
    channels = sum(layer['channels'] for layer in layers)
    conv_channels = sum(layer['conv_channels'] for layer in layers)
    totals = dict(
        num_layers=len(layers),
        channels=channels,
        conv_channels=conv_channels,
        ratio=conv_channels / channels if channels else 0.,
        mean_ratio=(sum(layer['ratio'] for layer in layers) / len(layers)
                    if layers else 0.),
        conv_weights=conv_weights,
        full_conv_weights=full_weights,
        macs=macs)
    return dict(layers=layers, totals=totals)
