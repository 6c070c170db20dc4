"""Layer depths of PartialNet's parameters, for layer-wise lr decay.

The convention is mmpretrain's (its ConvNeXt's ``get_layer_depth``, read by
its ``LearningRateDecayOptimWrapperConstructor`` and by
:class:`~mmpartial.engine.LayerDecayOptimWrapperConstructor`): a parameter
name maps to ``(layer_depth, num_layers)``, depth 0 nearest the input and
``num_layers - 1`` for what sits after the backbone. For a network of ``N``
blocks:

- the stem (``downsample_layers.0``) is depth 0;
- block ``k`` of the network (counted over all stages from 0,
  ``stages.<i>.<j>``) is depth ``k + 1``: every block its own depth, as
  PartialNet has few blocks (13-28) and they differ a lot in width;
- a merging layer (``downsample_layers.<i>``, i > 0) shares the depth of
  the first block of its stage, the block it feeds;
- everything else, the dense-prediction output norms (``norm<i>``) and
  every name outside the backbone (neck, heads), is depth ``N + 1``. The
  output norms go there because an ImageNet checkpoint has none: they start
  fresh, like the heads, and learn at the full rate (ConvNeXt's output
  norms get the same depth);

so ``num_layers = N + 2``.
"""


def layer_depth(param_name, depths, prefix=''):
    """The layer depth of a PartialNet parameter.

    Args:
        param_name (str): The parameter's name, e.g.
            ``'backbone.stages.2.3.mlp.fc1.weight'``.
        depths (Sequence[int]): Blocks per stage (the arch's ``depths``).
        prefix (str): The backbone's prefix in ``param_name``, e.g.
            ``'backbone.'``; a name without it lies outside the backbone.
            Defaults to ``''`` (names relative to the backbone).

    Returns:
        tuple[int, int]: The parameter's depth and the number of depths.
    """
    num_layers = sum(depths) + 2
    last = num_layers - 1
    if not param_name.startswith(prefix):
        return last, num_layers
    parts = param_name[len(prefix):].split('.')
    if parts[0] == 'downsample_layers':
        stage = int(parts[1])
        # The stem is depth 0; a merging layer goes with the block after it.
        return (sum(depths[:stage]) + 1 if stage else 0), num_layers
    if parts[0] == 'stages':
        stage, block = int(parts[1]), int(parts[2])
        return sum(depths[:stage]) + block + 1, num_layers
    return last, num_layers
