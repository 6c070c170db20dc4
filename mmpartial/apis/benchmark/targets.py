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

import torch
import torch.nn as nn

from ..counting import SCOPES, count_macs, model_macs

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
        # The model's mode, not nn.Module's default (training): exporters
        # restore a wrapper's mode onto everything inside it.
        self.train(model.training)

    def forward(self, x):
        return self.model(x, mode='tensor')


class _ExtractFeat(nn.Module):
    """A detector's backbone and neck (``extract_feat``) as a module."""

    def __init__(self, detector):
        super().__init__()
        self.detector = detector
        self.train(detector.training)  # as _TensorForward's

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
    #: Why the ONNX runtimes do not run this target, or None.
    runtime_problem = None
    #: Why this target has no deploy form (its row is n/a), or None.
    deploy_problem = None

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

    def tensor_module(self, model):
        """The model as a module of tensors in, tensors out, fed
        :meth:`tensor_inputs`: what is counted, checked against the CPU,
        trained in a train step and exported to ONNX."""
        return model

    def tensor_inputs(self, inputs):
        """The part of :meth:`make_inputs`'s inputs that
        :meth:`tensor_module` takes."""
        return inputs

    def count_macs(self, model, img_size):
        """MACs of ``model`` (one of its forms) on one image."""
        inputs = self.tensor_inputs(self.make_inputs(1, img_size, 'cpu'))
        return count_macs(self.tensor_module(model), inputs)

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
        module = self.tensor_module(model)
        if compiler is not None:
            module = compiler(module)
        return lambda: module(*inputs)


class ClassifierTarget(BenchmarkTarget):
    """A classifier (an mmpretrain ImageClassifier or
    :class:`ArchClassifier`): images in, logits out."""
    train_loss = 'cross_entropy'
    mac_scope = SCOPES['classifier']

    def count_macs(self, model, img_size):
        return model_macs(model, img_size)

    def tensor_module(self, model):
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
    runtime_problem = ('predict() runs its post-processing in PyTorch; the '
                       'backbone row shows the runtimes')
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

    def tensor_inputs(self, inputs):
        return inputs[:1]  # the images; data samples are not traceable

    def count_macs(self, model, img_size):
        return model_macs(model, img_size)

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
    MACs are counted in mmdet's ``get_flops`` convention (fixed numbers of
    RoIs), which the timed pass, with as many proposals as the weights
    give, need not match: no GFLOP/s is claimed. Compiled:
    ``extract_feat``; RPN and RoI heads have data-dependent shapes (NMS)
    and run eagerly.
    """
    mac_scope = SCOPES['detector']
    macs_cover_model = False
    compile_scope = 'backbone and neck (extract_feat); heads run eagerly'
    compiled_method = 'extract_feat'

    def sample_type(self):
        from mmdet.structures import DetDataSample
        return DetDataSample

    def tensor_module(self, model):
        return _ExtractFeat(model)


class SegmentorTarget(_PredictTarget):
    """A whole mmseg segmentor: ``predict`` with post-processing.

    Timing covers the config's own inference (``test_cfg``: whole image or
    sliding window): backbone, neck, decode head, the logits resized to
    the image and the per-pixel argmax. The MAC count covers the backbone,
    neck and decode head on the whole image (the auxiliary head only
    trains).
    Compiled: ``encode_decode`` (the tensor part, resize included); the
    window loop and the argmax run eagerly.
    """
    mac_scope = SCOPES['segmentor']
    compile_scope = 'backbone, neck and decode head (encode_decode); ' \
        'sliding windows and argmax run eagerly'
    compiled_method = 'encode_decode'
    extra_meta = dict(padding_size=[0, 0, 0, 0])

    def sample_type(self):
        from mmseg.structures import SegDataSample
        return SegDataSample

    def tensor_module(self, model):
        return _TensorForward(model)
