"""Export a PartialNet classifier (logits) or backbone to ONNX.

The exported graph is always the deploy form (folded norms, see
``PartialNet.switch_to_deploy``), built from a train-form checkpoint
(switched after loading) or a deploy-form one (written by
:func:`~mmpartial.apis.deploy.reparameterize`). Batch size and image size
are dynamic: the relative-position buckets of the attention are computed
inside the graph from the runtime size. The input is the normalised image
tensor (the data preprocessor's output, RGB, NCHW). After exporting, the
file is run in onnxruntime and compared with PyTorch.
"""
import os
import os.path as osp
import warnings

import numpy as np
import torch
import torch.nn as nn

from mmpartial.models import PartialNet
from mmpartial.utils.checkpoint import read_checkpoint
from .deploy import (DeployError, build_partialnet_model,
                     is_deploy_state_dict, load_partialnet_config,
                     load_train_checkpoint)


class ClassifierLogits(nn.Module):
    """``classifier(x, mode='tensor')``: logits from normalised images."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(x, mode='tensor')


class BackboneOutputs(nn.Module):
    """The backbone's outputs as a tuple of tensors."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return tuple(self.backbone(x))


def build_deploy_model(config, checkpoint, deploy=False, cfg_options=None):
    """The deploy-form model of ``config`` with ``checkpoint``'s weights.

    Args:
        config (str): Config with a PartialNet backbone.
        checkpoint (str): Train-form checkpoint, or a deploy-form one.
        deploy (bool): Require ``checkpoint`` to be in deploy form.
        cfg_options (dict, optional): Config overrides.

    Returns:
        nn.Module: The model in eval mode, backbone in deploy form.
    """
    cfg = load_partialnet_config(config, cfg_options)
    state, meta = read_checkpoint(checkpoint)
    in_deploy_form = is_deploy_state_dict(state, meta)
    if deploy and not in_deploy_form:
        raise DeployError(
            f'--deploy was given, but {checkpoint!r} is a train-form '
            'checkpoint; drop --deploy (it is then folded here) or '
            'reparameterise it first with tools/reparameterize.py')
    cfg.model.backbone.deploy = in_deploy_form
    model = build_partialnet_model(cfg)
    if in_deploy_form:
        # Strict; DPConv widths resize to the checkpoint's while loading,
        # so shapes are not compared beforehand.
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise DeployError(f'deploy checkpoint {checkpoint!r} does not '
                              f'fit the config: {err}') from None
    else:
        load_train_checkpoint(model, checkpoint, state, meta)
        model.backbone.switch_to_deploy()
    return model.eval()


def export_target(model, backbone_only):
    """The module to export and the names of its outputs."""
    if backbone_only:
        backbone = model.backbone
        names = [f'stage{i}' for i in backbone.out_indices]
        return BackboneOutputs(backbone).eval(), names
    if not hasattr(model, 'head') or type(model).__name__ != \
            'ImageClassifier':
        raise DeployError(
            f'{type(model).__name__} is not a classifier: only classifiers '
            '(logits) are exported whole; pass --backbone-only to export '
            'the backbone of this model')
    return ClassifierLogits(model).eval(), ['logits']


def write_onnx(module, out, input_shape, output_names, opset=17):
    """Trace ``module`` on a random input and write ONNX with dynamic batch
    and image size (temporary file first, then moved into place)."""
    dynamic_axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
    for name in output_names:
        dynamic_axes[name] = {0: 'batch'} if name == 'logits' else {
            0: 'batch', 2: f'{name}_height', 3: f'{name}_width'}
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    tmp = out + '.tmp'
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Shape checks in the model's Python code trace as constants;
            # they do not change what the graph computes.
            warnings.simplefilter('ignore')
            torch.onnx.export(module, (torch.randn(*input_shape), ), tmp,
                              input_names=['input'],
                              output_names=output_names,
                              dynamic_axes=dynamic_axes,
                              opset_version=opset, dynamo=False)
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def check_onnx(module, path, shapes, seed=0):
    """Run ``path`` in onnxruntime and ``module`` in PyTorch on random
    inputs of each shape.

    Returns:
        list[tuple[tuple, float, float]]: Per shape: the shape, the maximum
        absolute difference and that difference relative to the largest
        PyTorch output magnitude.
    """
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    generator = torch.Generator().manual_seed(seed)
    results = []
    for shape in shapes:
        x = torch.randn(*shape, generator=generator)
        with torch.no_grad():
            expected = module(x)
        if isinstance(expected, torch.Tensor):
            expected = (expected, )
        got = session.run(None, {'input': x.numpy()})
        diff = max(float(np.abs(g - e.numpy()).max())
                   for g, e in zip(got, expected))
        scale = max(float(e.abs().max()) for e in expected)
        results.append((tuple(shape), diff, diff / max(scale, 1e-12)))
    return results


def export_onnx(config, checkpoint, out, backbone_only=False, deploy=False,
                img_size=(224, 224), opset=17, cfg_options=None,
                overwrite=False):
    """Export the deploy form of a model to ONNX and check it.

    Args:
        config (str): Config with a PartialNet backbone.
        checkpoint (str): Train-form checkpoint, or a deploy-form one.
        out (str): The ``.onnx`` file to write.
        backbone_only (bool): Export the backbone (its stage outputs)
            instead of the classifier (logits); needed for detectors.
        deploy (bool): Require ``checkpoint`` to be in deploy form.
        img_size (tuple[int, int]): Height and width to trace with; the
            exported model takes any size of at least the total stride.
        opset (int): ONNX opset version.
        cfg_options (dict, optional): Config overrides.
        overwrite (bool): Replace ``out`` if it exists.

    Returns:
        tuple[list[str], list[tuple]]: The output names, and the
        comparison with PyTorch (:func:`check_onnx`) on the traced shape
        and on a larger batch at another size.
    """
    if osp.exists(out) and not overwrite:
        raise DeployError(f'{out!r} exists; pass --overwrite to replace it')
    height, width = img_size
    stride = PartialNet.stride
    if min(height, width) < stride:
        raise DeployError(f'--img-size must be at least {stride} {stride} '
                          f'(the total stride), got {height} {width}')
    model = build_deploy_model(config, checkpoint, deploy, cfg_options)
    module, names = export_target(model, backbone_only)
    write_onnx(module, out, (1, 3, height, width), names, opset)
    shapes = [(1, 3, height, width),
              (2, 3, height + stride, width + 2 * stride)]
    return names, check_onnx(module, out, shapes)
