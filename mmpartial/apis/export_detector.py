"""Export a whole Mask R-CNN with a PartialNet backbone to ONNX.

The exported graph runs from the normalised image to the final detections,
with nothing outside ONNX's standard operator set (opset 17): the backbone
in deploy form, the FPN, the RPN (top-k per level, box decoding, NMS
across levels), the RoI heads (RoIAlign on the FPN level of each RoI,
class-wise box decoding, class-wise NMS) and the mask head with the masks
pasted into the image. mmcv's RoIAlign and NMS have no standard ONNX form;
the wrapper calls torchvision's ``roi_align`` and ``nms`` instead, which
compute the same (``aligned=True``: the same half-pixel shift) and which
torchvision exports as ONNX ``RoiAlign`` (``half_pixel`` coordinates) and
``NonMaxSuppression``. The rest is the arithmetic of mmdet's ``predict``,
written with traceable tensor operations (mmdet's own has data-dependent
Python control flow).

What is exported
    Input ``image``: ``(1, 3, H, W)`` float32, the data preprocessor's
    output (normalised RGB) for an image resized and zero-padded to the
    fixed size ``H x W`` the graph was exported for. Outputs, for the
    ``max_per_img`` detections of the config's ``test_cfg.rcnn`` (in order
    of score; rows beyond the detections found are padding):

    - ``boxes`` ``(N, 4)`` float32: ``x1, y1, x2, y2`` in pixels of the
      ``H x W`` input (divide by the resize scale for the original image);
    - ``scores`` ``(N, )`` float32 (0 in padding rows);
    - ``labels`` ``(N, )`` int64: class index, -1 in padding rows;
    - ``masks`` ``(N, H, W)`` bool: the binary masks (the config's
      ``mask_thr_binary``) pasted into the input.

    Boxes are clipped to the whole ``H x W`` input; mmdet clips to the
    image inside the padding. PyTorch and the ONNX graph agree when both
    get the same padded input, which :func:`check_detector_onnx` does.

Supported: mmdet's ``MaskRCNN`` (and ``FasterRCNN``, without masks) with
an ``RPNHead``, a ``StandardRoIHead`` (or mmpartial's
``CappedMaskRoIHead``) with ``SingleRoIExtractor``\\ s of RoIAlign (mmcv's
or mmpartial's), a box head with ``DeltaXYWHBBoxCoder`` and softmax
scores, and an ``FCNMaskHead``. Other parts, and operators without an ONNX
form, are errors that name them (:class:`~.deploy.DeployError`).
"""
import os
import os.path as osp
import re
import warnings

import numpy as np
import torch
import torch.nn as nn
import torchvision
from torch.nn import functional as F

from .deploy import DeployError, load_partialnet_config
from .detector_onnx_check import check_detector_onnx
from .export import build_deploy_model


def nms_indices(boxes, scores, iou, threshold, max_out):
    """Single-class NMS of the boxes whose score is above ``threshold``:
    the kept indices by decreasing score, at most ``max_out``.

    torchvision's ``nms`` runs it in PyTorch and exports as ONNX
    ``NonMaxSuppression``; the score threshold is a ``NonZero`` before it.
    """
    candidates = (scores > threshold).nonzero().flatten()
    keep = torchvision.ops.nms(boxes[candidates], scores[candidates], iou)
    return candidates[keep][:max_out]


def decode_boxes(coder, anchors, deltas, max_shape, wh_ratio_clip=16 / 1000):
    """Boxes from ``(N, 4)`` anchors and deltas: the arithmetic of mmdet's
    ``DeltaXYWHBBoxCoder.decode`` (whose ONNX branch is mmdet 2's), boxes
    clipped to ``max_shape`` (H, W)."""
    deltas = deltas * deltas.new_tensor(coder.stds) + \
        deltas.new_tensor(coder.means)
    centre = (anchors[:, :2] + anchors[:, 2:]) * 0.5
    size = anchors[:, 2:] - anchors[:, :2]
    limit = abs(float(np.log(wh_ratio_clip)))
    xy = centre + size * deltas[:, :2]
    wh = size * deltas[:, 2:].clamp(min=-limit, max=limit).exp()
    x1, y1 = (xy - wh * 0.5).unbind(1)
    x2, y2 = (xy + wh * 0.5).unbind(1)
    if coder.clip_border:
        height, width = max_shape
        x1, x2 = x1.clamp(min=0, max=width), x2.clamp(min=0, max=width)
        y1, y2 = y1.clamp(min=0, max=height), y2.clamp(min=0, max=height)
    return torch.stack([x1, y1, x2, y2], 1)


def batched_nms(boxes, scores, groups, iou, max_out):
    """NMS within each group (mmdet's ``batched_nms``: boxes of different
    groups are moved apart by ``group x (max coordinate + 1)``, the max
    taken over the candidates). Candidates are the boxes with a
    non-negative score; returns the kept indices by decreasing score."""
    valid = scores >= 0
    top = torch.where(valid[:, None], boxes, torch.zeros_like(boxes)).max()
    moved = boxes + (groups.to(boxes) * (top + 1))[:, None]
    return nms_indices(moved, scores, float(iou), -0.5, int(max_out))


def top_kept(scores, keep, k):
    """The ``k`` best of the kept indices, by score: ``(scores, indices,
    valid)``, padded (valid False) where fewer were kept."""
    kept = torch.full_like(scores, -1.).scatter(0, keep, scores[keep])
    best, index = kept.topk(min(int(k), int(scores.shape[0])))
    return best, index, best >= 0


def paste_masks(masks, boxes, height, width):
    """Paste ``(N, 1, h, w)`` mask probabilities into ``height x width``
    at ``boxes`` by bilinear sampling (mmdet's ``_do_paste_mask`` over the
    whole image)."""
    x0, y0, x1, y1 = boxes.split(1, dim=1)
    ys = torch.arange(height, device=boxes.device).to(boxes) + 0.5
    xs = torch.arange(width, device=boxes.device).to(boxes) + 0.5
    ys = (ys - y0) / (y1 - y0) * 2 - 1
    xs = (xs - x0) / (x1 - x0) * 2 - 1
    ys = torch.where(torch.isinf(ys), torch.zeros_like(ys), ys)
    xs = torch.where(torch.isinf(xs), torch.zeros_like(xs), xs)
    n = masks.shape[0]
    grid = torch.stack([xs[:, None, :].expand(n, height, width),
                        ys[:, :, None].expand(n, height, width)], dim=3)
    return F.grid_sample(masks, grid, align_corners=False)[:, 0]


def _type_name(module):
    return type(module).__name__


# RoI heads whose inference is mmdet's StandardRoIHead's (CappedMaskRoIHead
# changes the mask head's training only).
ROI_HEADS = ('StandardRoIHead', 'CappedMaskRoIHead')


def unsupported_parts(detector):
    """What :class:`ExportableMaskRCNN` cannot export in ``detector``, as
    ``'attribute: TypeName'`` strings (empty when all is supported)."""
    problems = []
    wanted = {
        'rpn_head': ('RPNHead', ),
        'roi_head': ROI_HEADS,
    }
    for name, types in wanted.items():
        part = getattr(detector, name, None)
        if _type_name(part) not in types:
            problems.append(f'{name}: {_type_name(part)}')
    roi_head = getattr(detector, 'roi_head', None)
    if _type_name(roi_head) not in ROI_HEADS:
        return problems
    heads = {'bbox_roi_extractor': 'SingleRoIExtractor',
             'mask_roi_extractor': 'SingleRoIExtractor',
             'mask_head': 'FCNMaskHead'}
    for name, type_name in heads.items():
        part = getattr(roi_head, name, None)
        if part is not None and _type_name(part) != type_name:
            problems.append(f'roi_head.{name}: {_type_name(part)}')
    for name in ('bbox_roi_extractor', 'mask_roi_extractor'):
        extractor = getattr(roi_head, name, None)
        for layer in getattr(extractor, 'roi_layers', []):
            if _type_name(layer) != 'RoIAlign' or layer.pool_mode != 'avg':
                problems.append(f'roi_head.{name}.roi_layers: '
                                f'{_type_name(layer)}')
                break
    bbox_head = roi_head.bbox_head
    if getattr(bbox_head, 'custom_cls_channels', False) or \
            getattr(bbox_head, 'reg_class_agnostic', False):
        problems.append(f'roi_head.bbox_head: {_type_name(bbox_head)} with '
                        'custom class scores or class-agnostic boxes')
    for name, head in (('rpn_head', detector.rpn_head),
                       ('roi_head.bbox_head', bbox_head)):
        coder = getattr(head, 'bbox_coder', None)
        if _type_name(coder) != 'DeltaXYWHBBoxCoder' or \
                getattr(coder, 'add_ctr_clamp', False):
            problems.append(f'{name}.bbox_coder: {_type_name(coder)}')
    if not getattr(detector.rpn_head, 'use_sigmoid_cls', True):
        problems.append('rpn_head: softmax classification')
    mask_head = getattr(roi_head, 'mask_head', None)
    if getattr(mask_head, 'class_agnostic', False):
        problems.append('roi_head.mask_head: class-agnostic masks')
    return problems


class ExportableMaskRCNN(nn.Module):
    """mmdet's Mask R-CNN test-time forward as one traceable graph.

    Args:
        detector (nn.Module): The mmdet detector, in eval mode (backbone
            in deploy form for the fastest graph).
        img_size (tuple[int, int]): The fixed input height and width.

    Raises:
        DeployError: A part of the detector that cannot be exported.
    """

    def __init__(self, detector, img_size):
        super().__init__()
        problems = unsupported_parts(detector)
        if problems:
            raise DeployError(
                f'{_type_name(detector)} cannot be exported whole: '
                f'unsupported part(s) {problems}. Supported: RPNHead and '
                'StandardRoIHead with SingleRoIExtractor (RoIAlign), '
                'DeltaXYWHBBoxCoder boxes and an FCNMaskHead; export the '
                'backbone alone with --backbone-only')
        self.detector = detector
        self.height, self.width = map(int, img_size)
        # What mmdet's predict reads.
        self.rpn_cfg = detector.rpn_head.test_cfg
        self.rcnn_cfg = detector.roi_head.test_cfg
        self.with_mask = detector.roi_head.with_mask
        with torch.no_grad():
            feats = detector.extract_feat(
                torch.zeros(1, 3, self.height, self.width))
        device = feats[0].device
        priors = detector.rpn_head.prior_generator.grid_priors(
            [f.shape[-2:] for f in feats], device=device)
        for level, anchors in enumerate(priors):
            self.register_buffer(f'anchors{level}', anchors,
                                 persistent=False)
        self.num_levels = len(priors)

    def forward(self, image):
        feats = self.detector.extract_feat(image)
        proposals, valid = self.proposals(feats)
        boxes, scores, labels, valid = self.detections(feats, proposals,
                                                       valid)
        outs = [torch.where(valid[:, None], boxes, torch.zeros_like(boxes)),
                torch.where(valid, scores, torch.zeros_like(scores)),
                torch.where(valid, labels, torch.full_like(labels, -1))]
        if self.with_mask:
            outs.append(self.masks(feats, boxes, labels) & valid[:, None,
                                                                 None])
        return tuple(outs)

    @property
    def max_shape(self):
        return (self.height, self.width)

    def proposals(self, feats):
        """RPN: top ``nms_pre`` anchors per level, decoded, NMS within each
        level, the ``max_per_img`` best: ``(boxes, valid)``."""
        head, cfg = self.detector.rpn_head, self.rpn_cfg
        cls_scores, bbox_preds = head(feats)
        scores, deltas, anchors, levels = [], [], [], []
        for level in range(self.num_levels):
            score = cls_scores[level][0].permute(1, 2, 0).reshape(-1)
            score = score.sigmoid()
            delta = bbox_preds[level][0].permute(1, 2, 0).reshape(-1, 4)
            prior = getattr(self, f'anchors{level}')
            nms_pre = cfg.get('nms_pre', -1)
            if 0 < nms_pre < score.shape[0]:
                score, index = score.topk(nms_pre)
                delta, prior = delta[index], prior[index]
            scores.append(score)
            deltas.append(delta)
            anchors.append(prior)
            levels.append(torch.full_like(score, level, dtype=torch.long))
        scores, levels = torch.cat(scores), torch.cat(levels)
        boxes = decode_boxes(head.bbox_coder, torch.cat(anchors),
                             torch.cat(deltas), self.max_shape)
        if cfg.get('min_bbox_size', -1) >= 0:
            size = cfg.min_bbox_size
            ok = (boxes[:, 2] - boxes[:, 0] > size) & \
                (boxes[:, 3] - boxes[:, 1] > size)
            scores = torch.where(ok, scores, torch.full_like(scores, -1.))
        keep = batched_nms(boxes, scores, levels, cfg.nms.iou_threshold,
                           scores.shape[0])
        _, index, valid = top_kept(scores, keep, cfg.max_per_img)
        return boxes[index], valid

    def roi_features(self, extractor, feats, boxes):
        """RoIAlign of every box on its FPN level (mmdet's
        ``SingleRoIExtractor``)."""
        count = extractor.num_inputs
        rois = torch.cat([boxes.new_zeros(boxes.shape[0], 1), boxes], 1)
        levels = extractor.map_roi_levels(rois, count)
        out = None
        for level, layer in enumerate(extractor.roi_layers[:count]):
            # torchvision's roi_align computes mmcv's (aligned: the same
            # half-pixel shift) and exports as ONNX RoiAlign.
            pooled = torchvision.ops.roi_align(
                feats[level], rois, tuple(layer.output_size),
                float(layer.spatial_scale), int(layer.sampling_ratio),
                bool(layer.aligned))
            pooled = pooled * (levels == level).to(pooled)[:, None, None,
                                                           None]
            out = pooled if out is None else out + pooled
        return out

    def detections(self, feats, proposals, valid):
        """Box head: class-wise decoding and NMS, the ``max_per_img``
        best: ``(boxes, scores, labels, valid)``."""
        roi_head, cfg = self.detector.roi_head, self.rcnn_cfg
        head = roi_head.bbox_head
        cls_score, bbox_pred = head(self.roi_features(
            roi_head.bbox_roi_extractor, feats, proposals))
        classes = head.num_classes
        scores = F.softmax(cls_score, dim=-1)[:, :classes]
        boxes = decode_boxes(head.bbox_coder,
                             proposals.repeat_interleave(classes, dim=0),
                             bbox_pred.reshape(-1, 4), self.max_shape)
        scores = torch.where(valid[:, None] & (scores > cfg.score_thr),
                             scores, torch.full_like(scores, -1.)).flatten()
        labels = torch.arange(classes, device=scores.device).repeat(
            proposals.shape[0])
        keep = batched_nms(boxes, scores, labels, cfg.nms.iou_threshold,
                           scores.shape[0])
        best, index, valid = top_kept(scores, keep, cfg.max_per_img)
        return boxes[index], best, labels[index], valid

    def masks(self, feats, boxes, labels):
        """Mask head on the detections, the masks pasted and binarised."""
        roi_head = self.detector.roi_head
        preds = roi_head.mask_head(self.roi_features(
            roi_head.mask_roi_extractor, feats, boxes))
        index = torch.arange(preds.shape[0], device=preds.device)
        probs = preds[index, labels.clamp(min=0)][:, None].sigmoid()
        pasted = paste_masks(probs, boxes, self.height, self.width)
        return pasted >= self.rcnn_cfg.mask_thr_binary


OUTPUT_NAMES = ('boxes', 'scores', 'labels', 'masks')


def _unsupported_operator(err):
    found = re.search(r"operator '([^']+)'", str(err))
    return found.group(1) if found else str(err).splitlines()[0]


def write_detector_onnx(wrapper, out, opset=17):
    """Trace ``wrapper`` on a zero image and write ONNX (a temporary file
    first, then moved into place).

    Raises:
        DeployError: An operator without an ONNX form (named), or an
            operator outside the standard domain in the written graph.
    """
    names = list(OUTPUT_NAMES[:4 if wrapper.with_mask else 3])
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    tmp = out + '.tmp'
    image = torch.zeros(1, 3, wrapper.height, wrapper.width)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            try:
                torch.onnx.export(wrapper, (image, ), tmp,
                                  input_names=['image'], output_names=names,
                                  opset_version=opset, dynamo=False)
            except torch.onnx.errors.UnsupportedOperatorError as err:
                raise DeployError(
                    f'the detector cannot be exported to ONNX opset '
                    f'{opset}: it runs the operator '
                    f'{_unsupported_operator(err)!r}, which has no ONNX '
                    'form') from None
        import onnx
        custom = sorted({f'{node.domain}::{node.op_type}'
                         for node in onnx.load(tmp).graph.node
                         if node.domain not in ('', 'ai.onnx')})
        if custom:
            raise DeployError(f'the exported detector uses operators outside '
                              f'the ONNX standard, which onnxruntime does not '
                              f'run: {custom}')
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return names


def canvas_size(cfg, img_size=None):
    """The fixed export size: ``img_size``, or the largest side of the
    config's test ``Resize`` scale (rounded up to the backbone stride) as a
    square, so that an image of either orientation fits."""
    if img_size is not None:
        return tuple(map(int, img_size))
    pipeline = cfg.get('test_dataloader', {}).get('dataset', {}).get(
        'pipeline', [])
    scales = [max(t['scale']) for t in pipeline
              if t.get('type') == 'Resize' and t.get('scale')]
    if not scales:
        raise DeployError('the config has no test Resize scale; pass '
                          '--img-size H W')
    side = -(-max(scales) // 32) * 32
    return side, side


def export_detector_onnx(config, checkpoint, out, deploy=False,
                         img_size=None, opset=17, cfg_options=None,
                         overwrite=False, check_images=()):
    """Export a whole Mask R-CNN (backbone in deploy form) and check it.

    Args:
        config (str): An mmdet config with a PartialNet backbone.
        checkpoint (str): Train-form or deploy-form checkpoint.
        out (str): The ``.onnx`` file to write.
        deploy (bool): Require ``checkpoint`` to be in deploy form.
        img_size (tuple[int, int], optional): The fixed input size;
            default :func:`canvas_size`.
        opset (int): ONNX opset (>= 16 for RoiAlign's coordinates).
        cfg_options (dict, optional): Config overrides.
        overwrite (bool): Replace ``out`` if it exists.
        check_images (Sequence[str]): Image files to compare onnxruntime
            with PyTorch on (:func:`check_detector_onnx`).

    Returns:
        tuple[list[str], tuple[int, int], list[dict]]: Output names, the
        input size and the per-image comparisons.
    """
    if osp.exists(out) and not overwrite:
        raise DeployError(f'{out!r} exists; pass --overwrite to replace it')
    if opset < 16:
        raise DeployError(f'--opset {opset}: the detector needs opset 16 or '
                          'later (RoiAlign with half_pixel coordinates)')
    model = build_deploy_model(config, checkpoint, deploy, cfg_options)
    if not hasattr(model, 'rpn_head'):
        raise DeployError(f'{type(model).__name__} is not a two-stage '
                          'detector; --detector exports Mask R-CNN / Faster '
                          'R-CNN')
    cfg = load_partialnet_config(config, cfg_options)
    size = canvas_size(cfg, img_size)
    stride = model.backbone.stride
    if size[0] % stride or size[1] % stride:
        raise DeployError(f'--img-size {size[0]} {size[1]}: both sides must '
                          f'be multiples of {stride}')
    names = write_detector_onnx(ExportableMaskRCNN(model, size).eval(), out,
                                opset)
    return names, size, check_detector_onnx(model, cfg, out, check_images,
                                            size) if check_images else []
