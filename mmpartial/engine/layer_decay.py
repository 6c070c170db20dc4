"""Layer-wise learning-rate decay for classifiers, detectors and segmentors.

mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` asks the model for
``get_layer_depth``, which only mmpretrain's classifiers have, and mmdet's
and mmseg's ``LearningRateDecayOptimizerConstructor`` know ConvNeXt (and
BEiT) by name. This constructor asks ``model.backbone`` instead, so that one
config key serves all three codebases.
"""
from collections import defaultdict
from numbers import Real

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from mmpartial.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor with layer-wise learning-rate decay.

    The parameter groups are those of mmengine's
    :class:`~mmengine.optim.DefaultOptimWrapperConstructor`, with every
    option of ``paramwise_cfg`` it knows (``custom_keys``,
    ``norm_decay_mult``, ``bias_decay_mult``, ``bias_lr_mult``,
    ``flat_decay_mult``, ...); then the learning rate of each group is
    multiplied by ``layer_decay_rate ** (num_layers - 1 - depth)``, where
    ``(depth, num_layers)`` is what
    ``model.backbone.get_layer_depth(name, prefix='backbone.')`` gives for
    the group's parameter (mmpretrain's convention, see
    :mod:`~mmpartial.models.backbones.layer_depth` for PartialNet). The
    stem learns slowest; the neck and heads, outside the backbone, at the
    full rate. An ``lr_mult`` of ``custom_keys`` multiplies as well (the
    scales compose; mmpretrain's constructor ignores ``lr_mult``).

    Args:
        optim_wrapper_cfg (dict): The optimizer wrapper's config, with
            ``optimizer`` (which must set ``lr``).
        paramwise_cfg (dict): mmengine's parameter-wise options plus
            ``layer_decay_rate`` (float in (0, 1], required; 1 turns the
            decay off).

    Example:
        >>> optim_wrapper = dict(
        ...     optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.05),
        ...     constructor='mmpartial.LayerDecayOptimWrapperConstructor',
        ...     paramwise_cfg=dict(layer_decay_rate=0.8, norm_decay_mult=0.))
    """

    def _validate_cfg(self):
        super()._validate_cfg()
        rate = self.paramwise_cfg.get('layer_decay_rate')
        if rate is None:
            raise ValueError(
                'LayerDecayOptimWrapperConstructor needs '
                'paramwise_cfg.layer_decay_rate, a float in (0, 1] (e.g. '
                f'0.8); got paramwise_cfg={self.paramwise_cfg!r}')
        if isinstance(rate, bool) or not isinstance(rate, Real) or \
                not 0 < rate <= 1:
            raise ValueError(
                'paramwise_cfg.layer_decay_rate must be a number in (0, 1] '
                f'(1: no decay), got {rate!r}')
        if self.base_lr is None:
            raise ValueError('LayerDecayOptimWrapperConstructor scales the '
                             'learning rate: set optimizer.lr')

    def add_params(self, params, module, prefix='', **kwargs):
        # mmengine's add_params recurses through self.add_params. Only the
        # outermost call (the whole model, no prefix) sees the backbone and
        # every group, so the depth scale is applied there, once.
        if prefix:
            super().add_params(params, module, prefix=prefix, **kwargs)
            return
        get_depth = self._layer_depth_of(module)
        first = len(params)
        super().add_params(params, module, prefix=prefix, **kwargs)
        names = {id(param): name for name, param in module.named_parameters()}
        rate = self.paramwise_cfg['layer_decay_rate']
        summary = defaultdict(int)
        for group in params[first:]:
            # mmengine makes one group per parameter.
            depth, num_layers = get_depth(names[id(group['params'][0])],
                                          prefix='backbone.')
            scale = rate**(num_layers - 1 - depth)
            # A group without 'lr' takes the optimizer's.
            group['lr'] = group.get('lr', self.base_lr) * scale
            summary[(depth, scale)] += 1
        if summary:
            print_log(
                f'layer-wise lr decay {rate} over {num_layers} depths (lr '
                'scale, trained tensors): ' + ', '.join(
                    f'depth {depth} x{scale:.3g} ({count})'
                    for (depth, scale), count in sorted(summary.items())),
                logger='current')

    @staticmethod
    def _layer_depth_of(model):
        """``model.backbone.get_layer_depth``, or an error naming what the
        model has instead."""
        backbone = getattr(model, 'backbone', None)
        if backbone is None:
            raise TypeError(
                'LayerDecayOptimWrapperConstructor reads the layer depths '
                f'from model.backbone, but the {type(model).__name__} model '
                'has no backbone')
        get_depth = getattr(backbone, 'get_layer_depth', None)
        if not callable(get_depth):
            raise TypeError(
                'LayerDecayOptimWrapperConstructor needs '
                'model.backbone.get_layer_depth(param_name, prefix), but the '
                f'{type(model).__name__} model\'s backbone, '
                f'{type(backbone).__name__}, has none (PartialNet and '
                'mmpretrain\'s ConvNeXt have it)')
        return get_depth
