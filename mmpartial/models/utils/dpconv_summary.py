"""Finding the DPConv layers of a model and reading their splits."""
from ..layers.dpconv import DPConv


def named_dpconvs(model):
    """Every :class:`DPConv` of ``model`` with its name, in module order.

    Returns:
        list[tuple[str, DPConv]]
    """
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, DPConv)]


def dpconv_summary(model):
    """The current split of every DPConv of ``model``, and totals.

    Returns:
        dict: ``layers``: one dict per layer, ``name`` plus
        :meth:`DPConv.split` (``channels``, ``conv_channels``, ``ratio``,
        ``num_groups``, ``zero_gates``, ``ordered``); ``totals``:
        ``num_layers``, ``channels`` and ``conv_channels`` (sums), ``ratio``
        (their quotient), ``mean_ratio`` (mean of the layer ratios),
        ``conv_weights`` (weights of the convolutions as they would deploy:
        ``sum k*k*conv_channels**2``) and ``full_conv_weights`` (the same
        for full convolutions over all channels). Empty layers and zero
        totals for a model without DPConv.
    """
    layers = []
    conv_weights = full_weights = 0
    for name, layer in named_dpconvs(model):
        split = layer.split()
        layers.append(dict(name=name, **split))
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
        full_conv_weights=full_weights)
    return dict(layers=layers, totals=totals)
