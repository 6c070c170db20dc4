"""Finding the DPConv layers of a model and reading their splits."""
from ..layers.dpconv import DPConv
from ..layers.pat_dpconv import PartialSplitLayer


def named_dpconvs(model):
    """Every ``(name, DPConv)`` of ``model``, in module order."""
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, DPConv)]


def named_dpconv_costs(model):
    """What the complexity term counts, one ``(name, module)`` per DPConv in
    module order: the PAT layer whose split it learns (both branches'
    multiply-adds), or the DPConv itself where it stands alone (an
    ``auto_div`` token mixer: the paper's ``nnz(U)``)."""
    owners = {id(module.dpconv): (name, module)
              for name, module in model.named_modules()
              if isinstance(module, PartialSplitLayer)
              and module.dpconv is not None}
    return [owners.get(id(layer), (name, layer))
            for name, layer in named_dpconvs(model)]


def dpconv_summary(model):
    """The current split of every DPConv of ``model``, and totals: a dict
    of ``layers`` (per layer ``name``, :meth:`DPConv.split`, ``kind``
    (``'PAT_ch'``, ``'PAT_sf'``, ``'token_mixer'``) and ``macs`` (of a PAT
    layer, per 224x224 image in a PartialNet)) and ``totals``
    (``num_layers``, ``channels``, ``conv_channels``, ``ratio``,
    ``mean_ratio``, ``conv_weights`` and ``full_conv_weights``: ``sum
    k*k*n**2`` as deployed and as full convolutions, and ``macs``)."""
    layers = []
    totals = dict(conv_weights=0, full_conv_weights=0, macs=0)
    for (name, layer), (_, owner) in zip(named_dpconvs(model),
                                         named_dpconv_costs(model)):
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
            totals['macs'] += cost or 0
        layers.append(entry)
        area = layer.kernel_size**2
        totals['conv_weights'] += area * split['conv_channels']**2
        totals['full_conv_weights'] += area * split['channels']**2
    channels = sum(layer['channels'] for layer in layers)
    conv_channels = sum(layer['conv_channels'] for layer in layers)
    totals = dict(
        num_layers=len(layers), channels=channels,
        conv_channels=conv_channels,
        ratio=conv_channels / channels if channels else 0.,
        mean_ratio=(sum(layer['ratio'] for layer in layers) / len(layers)
                    if layers else 0.),
        **totals)
    return dict(layers=layers, totals=totals)
