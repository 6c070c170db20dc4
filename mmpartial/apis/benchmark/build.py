"""Building what the benchmark times: from ``--arch`` (torch alone) or a
config (through :mod:`mmpartial.apis.model`), checked first so mistakes
fail in a second; and the deploy form of a built model."""
import copy
import logging
import os.path as osp
import sys

import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MMLogger

from mmpartial.models import PartialNet
from mmpartial.models.layers.builders import build_act
from ..config import load_config
from ..config_checks import built_backbone_problem, partialnet_backbone_problem
from ..model import build_model, load_model_checkpoint
from .options import BenchmarkError
from .targets import (NUM_CLASSES, SCOPE_KINDS, BackboneTarget,
                      ClassifierTarget, DetectorTarget, SegmentorTarget)


def quiet_mmengine_logs(level=logging.WARNING):
    """Keep stdout for the report: mmengine logs to stderr, warnings only.

    mmengine's logger prints every initialised weight at INFO level, and
    prints to stdout, where the Markdown table goes.
    """
    logger = MMLogger.get_current_instance()
    logger.setLevel(level)
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) \
                and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
            handler.setLevel(level)


class ArchClassifier(nn.Module):
    """PartialNet-``arch`` with a head of ``PartialNetClsHead``'s shape
    (global pooling, bias-free 1x1 convolution to 1280, the variant's
    activation, linear to 1000 classes), built from torch alone.

    ``--arch`` times this rather than an mmpretrain ImageClassifier, so the
    benchmark also runs where mmpretrain (and mmcv) are not installed, as
    on a GPU machine with torch only; parameters and MACs are those of
    configs/partialnet-<arch>_in1k.py's model.
    """

    def __init__(self, arch, num_classes=NUM_CLASSES, hidden_channels=1280):
        super().__init__()
        self.backbone = PartialNet(arch)
        # ``head.conv``/``head.fc``: the keys of PartialNetClsHead, so an
        # ImageNet checkpoint of the config loads as it is.
        self.head = nn.ModuleDict(dict(
            conv=nn.Conv2d(self.backbone.channels[-1], hidden_channels, 1,
                           bias=False),
            act=build_act(PartialNet.arch_zoo[arch]['act_cfg']),
            fc=nn.Linear(hidden_channels, num_classes)))

    def init_weights(self):
        self.backbone.init_weights()
        for layer in (self.head.conv, self.head.fc):
            nn.init.trunc_normal_(layer.weight, std=.02)
        nn.init.zeros_(self.head.fc.bias)

    def forward(self, x, mode='tensor'):
        # ``mode`` as ImageClassifier takes it, so both are fed alike.
        x = F.adaptive_avg_pool2d(self.backbone(x)[-1], 1)
        head = self.head
        return head.fc(head.act(head.conv(x)).flatten(1))


def deploy_copy(model):
    """A copy of ``model`` in deploy form, or why there is none.

    The model's own ``switch_to_deploy`` if it has one (it knows its
    parts); otherwise that of its backbone, neck and head where they have
    one.

    Returns:
        tuple[nn.Module | None, str | None]: ``(deployed, None)`` or
        ``(None, reason)``.
    """
    def switchable(module):
        return callable(getattr(module, 'switch_to_deploy', None))

    parts = [''] if switchable(model) else [
        name for name in ('backbone', 'neck', 'head')
        if switchable(getattr(model, name, None))]
    if not parts:
        return None, (f'{type(model).__name__} and its backbone have no '
                      'switch_to_deploy() yet')
    deployed = copy.deepcopy(model)
    for name in parts:
        part = getattr(deployed, name) if name else deployed
        try:
            part.switch_to_deploy()
        except (NotImplementedError, RuntimeError, ValueError) as err:
            return None, (f'{type(part).__name__}.switch_to_deploy() '
                          f'failed: {type(err).__name__}: {err}')
    return deployed.eval(), None


def load_benchmark_config(path, cfg_options=None):
    """Load a config and check that the benchmark can build it.

    Checked before anything is built, so mistakes fail in a second: its
    ``default_scope`` is mmpretrain, mmdet or mmseg, and its backbone is a
    PartialNet (besides :func:`~mmpartial.apis.load_config`'s checks).

    Returns:
        tuple[Config, str]: The config and its kind (``'classification'``,
        ``'detection'`` or ``'segmentation'``).
    """
    cfg = load_config(path, cfg_options)
    scope = cfg.get('default_scope')
    if scope not in SCOPE_KINDS:
        raise BenchmarkError(
            f'config {path!r} has default_scope={scope!r}; the benchmark '
            f'builds {", ".join(SCOPE_KINDS)} configs '
            f'({", ".join(SCOPE_KINDS.values())})')
    problem = partialnet_backbone_problem(cfg, path)
    if problem:
        raise BenchmarkError(
            f'{problem}. The benchmark is for PartialNet models, e.g. '
            'configs/partialnet-t0_in1k.py or '
            'configs/mask-rcnn_partialnet-t0_coco.py')
    return cfg, SCOPE_KINDS[scope]


def build_benchmark_model(cfg, checkpoint=None):
    """The model of a checked config, in eval mode, float32 on the CPU.

    Its weights are initialised (``init_weights``: value ranges, and so
    e.g. denormal numbers on CPUs, as in a model about to be trained), then
    ``checkpoint``'s are loaded where given.
    """
    quiet_mmengine_logs()
    model = build_model(cfg)
    problem = built_backbone_problem(model)
    if problem:
        raise BenchmarkError(problem)
    model.init_weights()
    if checkpoint is not None:
        load_model_checkpoint(model, checkpoint)
    return model.eval()


def build_targets(arch=None, config=None, cfg_options=None, checkpoint=None):
    """The targets to time for ``--arch`` or a config.

    Returns:
        tuple[list[BenchmarkTarget], str]: The targets (a classifier; or a
        detector's or segmentor's backbone and the whole model) and the
        kind of model (a value of :data:`SCOPE_KINDS`).
    """
    if (arch is None) == (config is None):
        raise BenchmarkError('give either a config or --arch, not both')
    if arch is not None:
        if arch not in PartialNet.arch_zoo:
            raise BenchmarkError(f'unknown arch {arch!r}; choose from '
                                 f'{list(PartialNet.arch_zoo)}')
        quiet_mmengine_logs()
        model = ArchClassifier(arch)
        model.init_weights()
        if checkpoint is not None:
            load_model_checkpoint(model, checkpoint)
        return [ClassifierTarget(
            'classifier', model.eval(),
            f'PartialNet-{arch.upper()} classifier ({NUM_CLASSES} classes)')
        ], 'classification'
    cfg, kind = load_benchmark_config(config, cfg_options)
    model = build_benchmark_model(cfg, checkpoint)
    name = osp.splitext(osp.basename(config))[0]
    if kind == 'classification':
        return [ClassifierTarget('classifier', model,
                                 f'{name}: {type(model).__name__}')], kind
    whole = DetectorTarget('detector', model,
                           f'{name}: {type(model).__name__}.predict') \
        if kind == 'detection' else SegmentorTarget(
            'segmentor', model, f'{name}: {type(model).__name__}.predict')
    return [
        BackboneTarget('backbone', model.backbone,
                       f'{name}: PartialNet backbone'), whole
    ], kind
