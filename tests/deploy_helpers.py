"""Shared by test_deploy.py and test_onnx_export.py."""
import os.path as osp
import subprocess
import sys

import torch

from conftest import REPO
from mmpartial.apis.benchmark.agreement import randomize_norms  # noqa: F401
from mmpartial.apis.deploy import (build_partialnet_model,
                                   load_partialnet_config)

CLS_CONFIG = osp.join(REPO, 'configs', 'partialnet-t0_toy-imagenet.py')
DET_CONFIG = osp.join(REPO, 'configs', 'mask-rcnn_partialnet-t0_toy.py')


def run_tool(name, *args):
    """Run ``tools/<name>.py`` with ``args`` from the repository root."""
    return subprocess.run(
        [sys.executable, f'tools/{name}.py', *map(str, args)], cwd=REPO,
        capture_output=True, text=True, timeout=600)


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
