"""Shared by test_deploy.py and test_onnx_export.py."""
import os.path as osp
import subprocess
import sys

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from conftest import REPO
from mmpartial.apis.deploy import (build_partialnet_model,
                                   load_partialnet_config)

CLS_CONFIG = osp.join(REPO, 'configs', 'partialnet-t0_toy-imagenet.py')
DET_CONFIG = osp.join(REPO, 'configs', 'mask-rcnn_partialnet-t0_toy.py')


def run_tool(name, *args):
    """Run ``tools/<name>.py`` with ``args`` from the repository root."""
    return subprocess.run(
        [sys.executable, f'tools/{name}.py', *map(str, args)], cwd=REPO,
        capture_output=True, text=True, timeout=600)


@torch.no_grad()
def randomize_norms(model, seed=0):
    """Give every norm non-trivial statistics and affine parameters, and
    the iRPE tables non-zero entries, so that folding them is tested."""
    gen = torch.Generator().manual_seed(seed)

    def fill(tensor, low, high):
        tensor.copy_(torch.rand(tensor.shape, generator=gen) * (high - low) +
                     low)

    for module in model.modules():
        if isinstance(module, _BatchNorm):
            fill(module.running_mean, -.5, .5)
            fill(module.running_var, .5, 2.)
            fill(module.weight, .5, 1.5)
            fill(module.bias, -.3, .3)
        elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
            fill(module.weight, .5, 1.5)
            fill(module.bias, -.3, .3)
    for name, param in model.named_parameters():
        if name.endswith('bias_table'):
            fill(param, -1., 1.)
    return model


def relative_diff(outs, refs):
    """Largest ``max|out - ref| / max|ref|`` over pairs of tensors."""
    if isinstance(outs, torch.Tensor):
        outs, refs = (outs, ), (refs, )
    assert len(outs) == len(refs)
    return max(((o - r).abs().max() / r.abs().max()).item()
               for o, r in zip(outs, refs))


def save_train_checkpoint(config, path, seed=0, spread_scores=False):
    """Build the model of ``config``, randomise it (weights with the
    spec's init, norms with :func:`randomize_norms`) and save it as an
    mmengine checkpoint. Returns the model (eval mode).

    With ``spread_scores`` (a detector), the last classification layers of
    the RPN and the box head get weights of std 0.5 and 0.1 instead of
    0.01, so
    that scores lie well apart as in a trained detector (untrained, they
    are all near 1 / (classes + 1) and their order is float noise).
    """
    torch.manual_seed(seed)
    model = build_partialnet_model(load_partialnet_config(config))
    model.init_weights()
    randomize_norms(model, seed)
    if spread_scores:
        with torch.no_grad():
            model.rpn_head.rpn_cls.weight.normal_(0, .5)
            model.roi_head.bbox_head.fc_cls.weight.normal_(0, .1)
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(epoch=1, dataset_meta=dict(
                        classes=['a', 'b', 'c', 'd']))), path)
    return model.eval()
