"""What the benchmark times: models built from ``--arch`` or a config.

A :class:`BenchmarkTarget` holds one model in its train form (as built, in
eval mode, float32 on the CPU) and knows how to feed it: a classifier (the
whole ImageClassifier, logits out), a backbone alone, a whole detector or a
whole segmentor (``predict`` with post-processing). Timing code stays
generic: it asks the target for inputs, for a callable to time and for a
module to count.
"""
import copy
import functools
import logging
import os.path as osp
import sys

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger

from mmpartial.models import PartialNet
from ..config import load_config
from ..config_checks import (built_backbone_problem,
                             partialnet_backbone_problem,
                             partialnet_out_channels)
from ..model import build_model, load_model_checkpoint
from .errors import BenchmarkError

# The scopes whose configs the benchmark builds, and what they hold.
SCOPE_KINDS = {'mmpretrain': 'classification', 'mmdet': 'detection',
               'mmseg': 'segmentation'}
# ImageNet's test size, COCO's 1333x800 (a multiple of 32), ADE20K's crop.
DEFAULT_IMG_SIZE = {'classification': (224, 224), 'detection': (800, 1280),
                    'segmentation': (512, 512)}
# ``--arch`` times the ImageNet classifier.
NUM_CLASSES = 1000


class _TensorForward(nn.Module):
    """``model(x, mode='tensor')`` as a plain ``forward(x)``.

    The MAC counter and ``torch.compile`` both want a module whose forward
    takes just tensors; an OpenMMLab model's forward also takes a mode.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, mode='tensor')


class _ExtractFeat(nn.Module):
    """A detector's backbone and neck (``extract_feat``) as a module."""

    def __init__(self, detector):
        super().__init__()
        self.detector = detector

    def forward(self, x):
        return self.detector.extract_feat(x)


class BenchmarkTarget:
    """A model to time, in train form, and how to run it.

    Args:
        name (str): Short name in the report (``classifier``, ...).
        model (nn.Module): The model as built, in eval mode.
        description (str): What it is, for the report.
    """
    #: What the MAC counter counts for this target (shown in the report).
    mac_scope = 'the whole model'
    #: Whether ``2 * MACs * images/s`` is the target's arithmetic rate.
    macs_cover_model = True
    #: How bf16/fp16 run: ``'cast'`` (weights and inputs in that dtype) or
    #: ``'autocast'`` (float32 weights and inputs under ``torch.autocast``).
    precision = 'cast'
    #: The loss of the train-step mode: ``'cross_entropy'`` (of logits on
    #: random labels), ``'features'`` (a stand-in on a backbone's outputs)
    #: or None (not timed).
    train_loss = None

    def __init__(self, name, model, description):
        self.name = name
        self.model = model
        self.description = description

    @property
    def compile_scope(self):
        """What ``torch.compile`` compiles, for the report."""
        return self.mac_scope

    def _storage_dtype(self, dtype):
        """The dtype of weights and inputs when running in ``dtype``."""
        return torch.float32 if self.precision == 'autocast' else dtype

    def prepare(self, model, device, dtype, channels_last):
        """A copy of ``model`` on ``device``, ready to run in ``dtype``."""
        model = copy.deepcopy(model).to(device=device,
                                        dtype=self._storage_dtype(dtype))
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def make_inputs(self, batch, img_size, device, dtype=torch.float32,
                    channels_last=False):
        """Random normalised images: the model's positional inputs."""
        memory_format = torch.channels_last if channels_last \
            else torch.contiguous_format
        images = torch.randn(batch, 3, *img_size, device=device,
                             dtype=self._storage_dtype(dtype))
        return (images.contiguous(memory_format=memory_format), )

    def mac_module(self, model):
        """The module the MAC counter traces, fed :meth:`mac_inputs`."""
        return model

    def mac_inputs(self, inputs):
        """The part of :meth:`make_inputs`'s inputs that the MAC counter
        traces."""
        return inputs

    def runner(self, model, inputs, dtype=torch.float32, compiled=False,
               compile_options=None):
        """A callable running one forward pass of ``model`` on ``inputs``.

        Args:
            model (nn.Module): From :meth:`prepare`.
            inputs (tuple): From :meth:`make_inputs`.
            dtype (torch.dtype): The dtype to run in.
            compiled (bool): Run through ``torch.compile``.
            compile_options (dict, optional): Its ``options`` (Inductor
                settings, e.g. ``freezing``).
        """
        compiler = functools.partial(torch.compile,
                                     options=compile_options) \
            if compiled else None
        run = self._forward(model, inputs, compiler)
        if self.precision != 'autocast' or dtype is torch.float32:
            return run
        device_type = inputs[0].device.type

        def run_autocast():
            with torch.autocast(device_type, dtype=dtype):
                return run()

        return run_autocast

    def _forward(self, model, inputs, compiler):
        """One pass of ``model`` on ``inputs``; ``compiler`` (None for
        eager mode) is ``torch.compile`` with the run's options."""
        module = self.mac_module(model)
        if compiler is not None:
            module = compiler(module)
        return lambda: module(*inputs)


class ClassifierTarget(BenchmarkTarget):
    """An mmpretrain ImageClassifier: images in, logits out."""
    train_loss = 'cross_entropy'

    def mac_module(self, model):
        return _TensorForward(model)


class BackboneTarget(BenchmarkTarget):
    """The PartialNet backbone alone: images in, stage outputs out."""
    mac_scope = 'the backbone'
    train_loss = 'features'


class _PredictTarget(BenchmarkTarget):
    """A whole OpenMMLab model timed through ``predict``, post-processing
    included, on random images with the data samples a test pipeline
    would give an image of exactly that size (unscaled, unpadded).

    Compiled: only :attr:`compiled_method`, the tensor part; ``predict``
    looks that method up on the instance, so shadowing it there for one
    call swaps in the compiled one (the class's method, bound beforehand).
    bf16/fp16 run under ``torch.autocast`` with float32 weights, as
    mmengine's test loop runs these models in fp16: their post-processing
    is written for that, not for a cast model.
    """
    precision = 'autocast'
    #: The method of the model that ``torch.compile`` compiles.
    compiled_method = None
    #: Extra image meta the model's post-processing reads.
    extra_meta = {}

    def sample_type(self):
        """The codebase's data sample class (imported once it is built)."""
        raise NotImplementedError

    def make_inputs(self, batch, img_size, device, dtype=torch.float32,
                    channels_last=False):
        images, = super().make_inputs(batch, img_size, device, dtype,
                                      channels_last)
        height, width = img_size
        meta = dict(img_shape=(height, width), ori_shape=(height, width),
                    pad_shape=(height, width),
                    batch_input_shape=(height, width), scale_factor=(1., 1.),
                    **self.extra_meta)
        sample_type = self.sample_type()
        samples = [sample_type(metainfo=meta) for _ in range(batch)]
        return images, samples

    def mac_inputs(self, inputs):
        return inputs[:1]  # the images; data samples are not traceable

    def _forward(self, model, inputs, compiler):
        images, samples = inputs
        if compiler is None:
            return lambda: model.predict(images, samples)
        name = self.compiled_method
        method = getattr(type(model), name)
        compiled_part = compiler(method.__get__(model))

        def run():
            setattr(model, name, compiled_part)
            try:
                return model.predict(images, samples)
            finally:
                delattr(model, name)

        return run


class DetectorTarget(_PredictTarget):
    """A whole mmdet detector: ``predict`` with post-processing.

    Timing covers everything from the normalised batch to the final boxes
    (and masks): backbone, neck, RPN, NMS, RoI heads, mask pasting. Data
    preprocessing (normalisation, padding) is left out, as for every target.
    The MAC count covers only the backbone and neck: the heads' work depends on
    how many proposals and detections the (random) weights produce.
    Compiled: ``extract_feat``; RPN and RoI heads have data-dependent
    shapes (NMS) and run eagerly.
    """
    mac_scope = 'backbone and neck only (the heads depend on the proposals)'
    macs_cover_model = False
    compile_scope = 'backbone and neck (extract_feat); heads run eagerly'
    compiled_method = 'extract_feat'

    def sample_type(self):
        from mmdet.structures import DetDataSample
        return DetDataSample

    def mac_module(self, model):
        return _ExtractFeat(model)


class SegmentorTarget(_PredictTarget):
    """A whole mmseg segmentor: ``predict`` with post-processing.

    Timing covers the config's own inference (``test_cfg``: whole image or
    sliding window): backbone, neck, decode head, the logits resized to
    the image and the per-pixel argmax. The MAC count covers the backbone, neck
    and decode head on the whole image (the auxiliary head only trains).
    Compiled: ``encode_decode`` (the tensor part, resize included); the
    window loop and the argmax run eagerly.
    """
    mac_scope = 'backbone, neck and decode head (the auxiliary head only ' \
        'trains)'
    compile_scope = 'backbone, neck and decode head (encode_decode); ' \
        'sliding windows and argmax run eagerly'
    compiled_method = 'encode_decode'
    extra_meta = dict(padding_size=[0, 0, 0, 0])

    def sample_type(self):
        from mmseg.structures import SegDataSample
        return SegDataSample

    def mac_module(self, model):
        return _TensorForward(model)


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


def arch_classifier_config(arch):
    """The config of PartialNet-``arch`` with its head, for ImageNet.

    The head gets the variant's activation (GELU for T0/T1, ReLU for the
    others) and the last stage's width, as in
    configs/partialnet-<arch>_in1k.py.
    """
    if arch not in PartialNet.arch_zoo:
        raise BenchmarkError(f'unknown arch {arch!r}; choose from '
                             f'{list(PartialNet.arch_zoo)}')
    backbone = dict(type='mmpartial.PartialNet', arch=arch)
    _, outputs = partialnet_out_channels(backbone)
    return Config(dict(
        default_scope='mmpretrain',
        model=dict(type='ImageClassifier', backbone=backbone,
                   head=dict(type='mmpartial.PartialNetClsHead',
                             num_classes=NUM_CLASSES,
                             in_channels=outputs[-1],
                             act_cfg=PartialNet.arch_zoo[arch]['act_cfg']))))


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
        model = build_benchmark_model(arch_classifier_config(arch),
                                      checkpoint)
        return [ClassifierTarget(
            'classifier', model,
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
