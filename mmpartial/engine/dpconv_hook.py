"""Training DPConv layers inside any mmengine model."""
from os.path import commonprefix

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop

from mmpartial.models.backbones.dpconv_cfg import parse_dpconv_cfg
from mmpartial.models.losses import DPConvLoss
from mmpartial.models.utils.dpconv_summary import (named_dpconv_costs,
                                                   named_dpconvs)
from mmpartial.registry import HOOKS


def _short_names(names):
    """Drop the dotted parts all names share at the start and at the end
    (``backbone.stages.2.5.token_mixer.dpconv`` -> ``2.5``)."""
    parts = [name.split('.') for name in names]
    if len(parts) < 2:
        return list(names)
    shortest = min(map(len, parts))  # every name keeps a part
    head = min(len(commonprefix(parts)), shortest - 1)
    tail = min(len(commonprefix([p[::-1] for p in parts])),
               shortest - head - 1)
    return ['.'.join(p[head:len(p) - tail]) for p in parts]


@HOOKS.register_module()
class DPConvHook(Hook):
    """Train the DPConv layers of a model: regulariser, warm-up, logs.

    The hook finds every DPConv of the model and applies the
    :class:`~mmpartial.models.losses.DPConvLoss` terms to every loss dict
    the model's forward returns for ``mode='loss'`` (any model: classifier,
    detector, ...), with the options of the backbone's ``dpconv_cfg`` (in
    the multiplicative form the task losses are logged scaled). The
    gates are frozen for epochs ``< warmup_epochs`` (iteration-based loops
    count passes over the dataloader). Logged every iteration:
    ``dpconv_mean_ratio``, ``dpconv_budget_usage`` (``R / T``) and, when
    multiplicative, ``dpconv_loss_factor``; every ``interval``, each
    layer's ratio.

    Args:
        interval (int): Iterations between per-layer ratio logs. Defaults
            to 50.
    """
    priority = 'NORMAL'
    _loss_args = ('budget', 'theta', 'alpha', 'complexity_weight',
                  'ordering_weight')

    def __init__(self, interval=50):
        if isinstance(interval, bool) or not isinstance(interval, int) \
                or interval < 1:
            raise ValueError(f'DPConvHook interval must be an int >= 1, got '
                             f'{interval!r}')
        self.interval = interval
        self._handle = None
        self._frozen = None
        self._factor = None

    @staticmethod
    def _find_cfg(model, logger):
        cfgs = [module.dpconv_cfg for module in model.modules()
                if isinstance(getattr(module, 'dpconv_cfg', None), dict)]
        if not cfgs:
            logger.warning('DPConvHook: no module of the model has a '
                           'dpconv_cfg; using the default DPConv options')
            return parse_dpconv_cfg({})
        if any(cfg != cfgs[0] for cfg in cfgs[1:]):
            raise ValueError(f'DPConvHook: the model holds different dpconv '
                             f'options {cfgs}; give every module the same')
        return cfgs[0]

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        named = named_dpconvs(model)
        if not named:
            raise RuntimeError(
                'DPConvHook: the model has no DPConv layers; turn them on '
                'with model.backbone.dpconv=dict(...) (PartialNet) or remove '
                'the hook')
        if any(layer.deploy for _, layer in named):
            raise RuntimeError('DPConvHook: the DPConv layers were switched '
                               'to deploy mode and can no longer be trained')
        self.cfg = self._find_cfg(model, runner.logger)
        self.names = _short_names([name for name, _ in named])
        self.layers = [layer for _, layer in named]
        self.loss = DPConvLoss([unit for _, unit in named_dpconv_costs(model)],
                               form=self.cfg['loss_form'],
                               **{k: self.cfg[k] for k in self._loss_args})
        self.remove()
        self._handle = model.register_forward_hook(self._add_losses,
                                                   with_kwargs=True)
        self._frozen = None
        runner.logger.info(
            f'DPConvHook: {len(self.layers)} DPConv layers '
            f'({self.cfg["mode"]}), {self.cfg["loss_form"]} complexity term,'
            f' budget {self.cfg["budget"]}, theta {self.cfg["theta"]}, '
            f'warm-up {self.cfg["warmup_epochs"]} epoch(s); '
            f'{self._ratio_text()}')

    def remove(self):
        """Take the forward hook off the model."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _add_losses(self, module, args, kwargs, output):
        # BaseModel.forward(inputs, data_samples=None, mode='tensor')
        mode = kwargs.get('mode', args[2] if len(args) > 2 else None)
        if mode != 'loss' or not isinstance(output, dict):
            return None
        if self.loss.form == 'multiplicative':
            self._factor = self.loss.scale_losses(output).detach()
        output.update(self.loss())
        return output

    @staticmethod
    def _epoch(runner):
        loop = getattr(runner, 'train_loop', None)
        if isinstance(loop, IterBasedTrainLoop):
            return runner.iter // max(len(loop.dataloader), 1)
        return runner.epoch

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        # Per iteration rather than per epoch: cheap, and right at once
        # after a resume and in iteration-based loops.
        frozen = self._epoch(runner) < self.cfg['warmup_epochs']
        if frozen == self._frozen:
            return
        for layer in self.layers:
            layer.gates_frozen = frozen
        if frozen:
            runner.logger.info(f'DPConvHook: gates frozen until epoch '
                               f'{self.cfg["warmup_epochs"]} (warm-up)')
        elif self._frozen is not None:
            runner.logger.info('DPConvHook: warm-up over, the gates learn')
        self._frozen = frozen

    @torch.no_grad()
    def _ratios(self):
        """Per-layer ratios and ``R / T``, read with one device sync."""
        values = [layer.conv_indicator().sum() / layer.channels
                  for layer in self.layers]
        values.append(self.loss.complexity() / self.loss.target)
        *ratios, usage = torch.stack([v.float() for v in values]).tolist()
        return ratios, usage

    def _ratio_text(self):
        ratios, usage = self._ratios()
        layers = ' '.join(f'{name}:{ratio:.3g}'
                          for name, ratio in zip(self.names, ratios))
        return (f'split ratios {layers}; mean '
                f'{sum(ratios) / len(ratios):.4f}, budget usage R/T '
                f'{usage:.3f}')

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        ratios, usage = self._ratios()
        hub = runner.message_hub
        hub.update_scalar('train/dpconv_mean_ratio',
                          sum(ratios) / len(ratios))
        hub.update_scalar('train/dpconv_budget_usage', usage)
        if self._factor is not None:
            hub.update_scalar('train/dpconv_loss_factor',
                              self._factor.item())
        if self.every_n_train_iters(runner, self.interval):
            runner.logger.info(f'DPConvHook: {self._ratio_text()}')

    def after_train(self, runner):
        self.remove()
