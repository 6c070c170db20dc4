"""Export a PartialNet classifier (logits) or backbone to ONNX.

Examples::

    # a classifier: deploy-form logits
    python tools/export_onnx.py configs/partialnet-t0_in1k.py \
        work_dirs/partialnet-t0_in1k/epoch_300.pth partialnet-t0.onnx

    # the backbone of a detector: its stage outputs
    python tools/export_onnx.py configs/mask-rcnn_partialnet-t2_coco.py \
        work_dirs/mask-rcnn_partialnet-t2_coco/epoch_12.pth \
        partialnet-t2_backbone.onnx --backbone-only --img-size 800 1280

The exported graph is always the deploy form (folded norms, see
``PartialNet.switch_to_deploy``). CHECKPOINT is a train-form checkpoint,
switched to deploy form after loading, or, with ``--deploy`` (detected from
its meta too), one written by tools/reparameterize.py. Batch size and image
size are dynamic: the relative-position buckets of the attention are
computed inside the graph from the runtime size. The input is the
normalised image tensor (the data preprocessor's output, RGB, NCHW).

After exporting, the model is run in onnxruntime on random inputs of two
shapes (the export one, and a larger batch at another size) and compared
with PyTorch; the maximum differences are printed.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import DictAction

import mmpartial  # noqa: F401  (registers models, safe checkpoint loading)
from mmpartial.engine.config_checks import ConfigError
from mmpartial.utils.deploy import (DeployError, build_model,
                                    is_deploy_state_dict, load_model_config,
                                    load_train_checkpoint, read_checkpoint)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config of the model')
    parser.add_argument('checkpoint', help='checkpoint (train or deploy form)')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument('--backbone-only', action='store_true',
                        help='export the backbone (its outputs) instead of '
                        'the classifier (logits); needed for detectors')
    parser.add_argument('--deploy', action='store_true',
                        help='CHECKPOINT is in deploy form (written by '
                        'tools/reparameterize.py)')
    parser.add_argument('--img-size', type=int, nargs=2, default=[224, 224],
                        metavar=('H', 'W'),
                        help='image size to trace with (the exported model '
                        'takes any size >= 32); default 224 224')
    parser.add_argument('--opset', type=int, default=17,
                        help='ONNX opset version (default 17)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace OUT if it exists')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    return parser.parse_args()


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
    cfg = load_model_config(config, cfg_options)
    state, meta = read_checkpoint(checkpoint)
    in_deploy_form = is_deploy_state_dict(state, meta)
    if deploy and not in_deploy_form:
        raise DeployError(
            f'--deploy was given, but {checkpoint!r} is a train-form '
            'checkpoint; drop --deploy (it is then folded here) or '
            'reparameterise it first with tools/reparameterize.py')
    cfg.model.backbone.deploy = in_deploy_form
    model = build_model(cfg)
    if in_deploy_form:
        # Strict; DPConv widths resize to the checkpoint's while loading.
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise DeployError(f'deploy checkpoint {checkpoint!r} does not '
                              f'fit the config: {err}') from None
    else:
        load_train_checkpoint(model, checkpoint)
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


def export(module, out, input_shape, output_names, opset=17):
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


def main():
    args = parse_args()
    if osp.exists(args.out) and not args.overwrite:
        raise DeployError(f'{args.out!r} exists; pass --overwrite to '
                          'replace it')
    height, width = args.img_size
    if min(height, width) < 32:
        raise DeployError(f'--img-size must be at least 32 32 (the total '
                          f'stride), got {height} {width}')
    model = build_deploy_model(args.config, args.checkpoint, args.deploy,
                               args.cfg_options)
    module, names = export_target(model, args.backbone_only)
    export(module, args.out, (1, 3, height, width), names, args.opset)
    print(f'exported {"the backbone" if args.backbone_only else "logits"} '
          f'(outputs {", ".join(names)}) with dynamic batch and image size '
          f'-> {args.out}')
    shapes = [(1, 3, height, width), (2, 3, height + 32, width + 64)]
    for shape, diff, rel in check_onnx(module, args.out, shapes):
        print(f'onnxruntime vs PyTorch, input {shape}: max abs diff '
              f'{diff:.3g} (relative {rel:.3g})')


if __name__ == '__main__':
    try:
        main()
    except (DeployError, ConfigError, FileNotFoundError) as err:
        sys.exit(f'error: {err}')
