"""Parameter and multiply-add counts, and a model's MACs per image.

MACs are counted with mmengine's :class:`~mmengine.analysis.FlopAnalyzer`,
mmengine's copy of fvcore's ``FlopCountAnalysis``, the counter behind the
paper's figures (T0 counts 0.247 G at 224x224; both give the same count
operator by operator). Despite its name it counts one fused multiply-add as
one "flop", i.e. it counts MACs.

:func:`model_macs` is the one count of a whole model that the metafile and
the results tables report, in the convention of the papers' tables
(:data:`SCOPES`).
"""
import warnings
from math import prod

import torch
import torch.nn as nn

from mmpartial.models.layers.roi_align import RoIAlign

MAC_COUNTING = (
    "mmengine.analysis (fvcore's counter): conv, linear, matmul and norm "
    "multiply-adds (its default "
    'operator handles, which also count pooling and upsampling elements), '
    'one multiply-add = one MAC, per image at the benchmark\'s input size; '
    '"conv/linear/matmul" counts the matrix-multiply-like operators only')

# The counter's operator names (its handles' names without ``aten::``; it calls
# ``_convolution`` "conv") of the matrix-multiply-like operators: the work a
# matmul peak is a fair yardstick for. Norms and pooling are left out.
MATMUL_LIKE_OPS = ('conv', 'linear', 'matmul', 'mm', 'bmm', 'addmm', 'einsum',
                   'scaled_dot_product_attention')

# mmdet's get_flops convention (the ``forward_dummy`` of mmdet 2.x, which
# the papers' detection tables were counted with): fixed RoI numbers, as
# the real ones depend on the image.
NUM_PROPOSALS = 1000
NUM_MASK_ROIS = 100
# What :func:`model_macs` counts, by kind of model.
SCOPES = {
    'classifier': 'the whole model',
    'segmentor': 'backbone, neck and decode head (the auxiliary head only '
                 'trains)',
    'detector': "mmdet's get_flops convention: backbone, neck and dense head "
                '(RPN or single-stage head) on the whole image, every box '
                f'head on {NUM_PROPOSALS} proposals, every mask head on '
                f'{NUM_MASK_ROIS}; RoIAlign and NMS not counted',
}


def count_params(model):
    """Number of parameters of ``model``, trainable or frozen (no buffers)."""
    return sum(param.numel() for param in model.parameters())


def _sdpa_macs(inputs, outputs):
    """MACs of ``aten::scaled_dot_product_attention``.

    The counter has no handle for it (it would count an attention that moved
    to the fused kernel as free): ``q @ k^T`` costs ``L * S * E`` per batch and
    head, ``attn @ v`` ``L * S * Ev``.
    """
    from mmengine.analysis.jit_handles import get_shape
    q_shape, k_shape, v_shape = (get_shape(v) for v in inputs[:3])
    queries = prod(q_shape[:-1])  # batch * heads * L
    return queries * k_shape[-2] * (q_shape[-1] + v_shape[-1])


def count_macs(module, inputs, exclude=()):
    """Count the multiply-adds of ``module(*inputs)``.

    Args:
        module (nn.Module): The module to trace; its ``forward`` takes
            ``inputs``. Tracing runs it once, under ``torch.no_grad``.
        inputs (tuple): Its positional inputs.
        exclude (tuple[type]): Submodule classes whose work is left out of
            every count (a convention that does not count them).

    Returns:
        dict: ``total`` (the whole count), ``conv_linear_matmul`` (the
        operators of :data:`MATMUL_LIKE_OPS` only), ``by_operator`` (the
        split) and ``unsupported_ops`` (operators the counter saw but does
        not count, e.g. activations and element-wise products, with their call
        counts).
    """
    from mmengine.analysis import FlopAnalyzer

    analysis = FlopAnalyzer(module, inputs)
    analysis.set_op_handle('aten::scaled_dot_product_attention', _sdpa_macs)
    # The counter logs every operator it skips; the counts are kept in the
    # result.
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with warnings.catch_warnings(), torch.no_grad():
        # Tracing warns about every shape check of the model; none changes
        # the traced graph for the fixed input size counted here.
        warnings.simplefilter('ignore')
        by_operator = dict(analysis.by_operator())
        unsupported = dict(analysis.unsupported_ops())
        if exclude:
            by_module = analysis.by_module_and_operator()
            for name, sub in module.named_modules():
                if isinstance(sub, exclude):
                    for op, n in by_module.get(name, {}).items():
                        by_operator[op] -= n
    return dict(
        total=int(sum(by_operator.values())),
        conv_linear_matmul=int(
            sum(by_operator.get(op, 0) for op in MATMUL_LIKE_OPS)),
        by_operator={op: int(n) for op, n in sorted(by_operator.items())},
        unsupported_ops={op: int(n) for op, n in sorted(unsupported.items())})


def model_kind(model):
    """``'classifier'``, ``'segmentor'`` or ``'detector'``.

    Told by the heads the model has, so that counting a classifier imports
    neither mmseg nor mmdet.
    """
    if hasattr(model, 'decode_head'):
        return 'segmentor'
    if any(hasattr(model, head) for head in ('roi_head', 'rpn_head',
                                             'bbox_head')):
        return 'detector'
    return 'classifier'


class CountedForward(nn.Module):
    """What :func:`model_macs` counts of ``model``, as ``forward(images)``
    (tensors only, traceable).

    Classifiers and segmentors run ``mode='tensor'`` (a segmentor's decode
    head only). Detectors run the features, the dense head and the RoI
    heads on :data:`NUM_PROPOSALS` fixed boxes, the mask heads on the first
    :data:`NUM_MASK_ROIS` of them; a cascade runs every stage on the same
    boxes, as mmdet's ``forward_dummy`` does.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.kind = model_kind(model)

    def forward(self, images):
        if self.kind != 'detector':
            return self.model(images, mode='tensor')
        feats = self.model.extract_feat(images)
        roi_head = getattr(self.model, 'roi_head', None)
        if roi_head is None:
            return feats, self.model.bbox_head(feats)
        outs = [feats]
        if getattr(self.model, 'rpn_head', None) is not None:
            outs.append(self.model.rpn_head(feats))
        height, width = images.shape[-2:]
        # Fixed, valid boxes spread over the image: the number, not the
        # place, sets the heads' cost.
        steps = torch.linspace(0, 1, NUM_PROPOSALS, device=images.device)
        rois = torch.stack([
            torch.zeros_like(steps), steps * width * 0.5,
            steps * height * 0.5, steps * width * 0.5 + width * 0.5,
            steps * height * 0.5 + height * 0.5], dim=1)
        # A cascade's heads take their stage first.
        stages = [(stage, ) for stage in range(roi_head.num_stages)] \
            if hasattr(roi_head, 'num_stages') else [()]
        # Every head output is returned: the tracer drops what is unused.
        for stage in stages:
            if roi_head.with_bbox:
                bbox = roi_head._bbox_forward(*stage, feats, rois)
                outs += [bbox['cls_score'], bbox['bbox_pred']]
            if roi_head.with_mask:
                outs.append(roi_head._mask_forward(
                    *stage, feats, rois[:NUM_MASK_ROIS])['mask_preds'])
        return outs


def model_macs(model, img_size):
    """MACs of a built model on one image, as the papers' tables count them.

    Args:
        model (nn.Module): A classifier (mmpretrain), segmentor (mmseg) or
            detector (mmdet), built; counted in eval mode. Its weights do
            not change the count.
        img_size (tuple[int]): ``(height, width)`` of the image.

    Returns:
        dict: :func:`count_macs`'s counts and ``scope``, what was counted
        (:data:`SCOPES`).
    """
    module, training = CountedForward(model), model.training
    images = torch.zeros(1, 3, *img_size)
    try:
        # Inference as the tables count it (no drop path, no dropout).
        model.eval()
        # RoIAlign is not counted (mmdet's convention): mmcv's is an op
        # the tracer cannot see into, mmpartial's (TorchRoIExtractor) is
        # made of matrix products that it would count.
        macs = count_macs(module, (images, ), exclude=(RoIAlign, ))
    finally:
        model.train(training)
    return dict(macs, scope=SCOPES[module.kind])


__all__ = [
    'CountedForward', 'MAC_COUNTING', 'MATMUL_LIKE_OPS', 'NUM_MASK_ROIS',
    'NUM_PROPOSALS', 'SCOPES', 'count_macs', 'count_params', 'model_kind',
    'model_macs'
]
