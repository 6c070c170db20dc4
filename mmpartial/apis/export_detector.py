"""Export a whole Mask R-CNN with a PartialNet backbone to ONNX.

The exported graph runs from the normalised image to the final detections,
with nothing outside ONNX's standard operator set (opset 17): the backbone
in deploy form, the FPN, the RPN (top-k per level, box decoding, NMS
across levels), the RoI heads (RoIAlign on the FPN level of each RoI,
class-wise box decoding, class-wise NMS) and the mask head with the masks
pasted into the image. mmcv's RoIAlign and NMS, which have no standard
ONNX form, are replaced by ONNX ``RoiAlign`` (``half_pixel`` coordinates:
mmcv's ``aligned=True``) and ``NonMaxSuppression``; in PyTorch the same
graph runs them through mmcv, so the wrapper computes exactly what mmdet's
``predict`` computes.

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
from torch.nn import functional as F

from .deploy import DeployError, load_partialnet_config
from .export import build_deploy_model


class RoiAlignOp(torch.autograd.Function):
    """RoIAlign: mmcv's in PyTorch, ONNX ``RoiAlign`` when exported."""

    @staticmethod
    def forward(ctx, feats, boxes, batch, out_h, out_w, scale, ratio,
                aligned):
        from mmcv.ops import roi_align
        rois = torch.cat([batch.to(boxes.dtype)[:, None], boxes], 1)
        return roi_align(feats, rois, (out_h, out_w), scale, ratio, 'avg',
                         aligned)

    @staticmethod
    def symbolic(g, feats, boxes, batch, out_h, out_w, scale, ratio,
                 aligned):
        mode = 'half_pixel' if aligned else 'output_half_pixel'
        return g.op('RoiAlign', feats, boxes, batch, mode_s='avg',
                    output_height_i=out_h, output_width_i=out_w,
                    sampling_ratio_i=ratio, spatial_scale_f=scale,
                    coordinate_transformation_mode_s=mode)


class NmsOp(torch.autograd.Function):
    """Single-class NMS of the boxes whose score is above ``threshold``:
    mmcv's in PyTorch, ONNX ``NonMaxSuppression`` when exported. Returns
    ONNX's ``(K, 3)`` selection (batch, class, box), by decreasing score.
    """

    @staticmethod
    def forward(ctx, boxes, scores, iou, threshold, max_out):
        from mmcv.ops import nms
        candidates = (scores > threshold).nonzero().flatten()
        _, keep = nms(boxes[candidates], scores[candidates], iou)
        selected = candidates[keep][:max_out]
        zeros = torch.zeros_like(selected)
        return torch.stack([zeros, zeros, selected], 1)

    @staticmethod
    def symbolic(g, boxes, scores, iou, threshold, max_out):

        def const(value, dtype):
            return g.op('Constant', value_t=torch.tensor(value, dtype=dtype))

        boxes = g.op('Unsqueeze', boxes, const([0], torch.long))
        scores = g.op('Unsqueeze', scores, const([0, 1], torch.long))
        return g.op('NonMaxSuppression', boxes, scores,
                    const([max_out], torch.long),
                    const([iou], torch.float), const([threshold],
                                                     torch.float))


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
    return NmsOp.apply(moved, scores, float(iou), -0.5, int(max_out))[:, 2]


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
        ``SingleRoIExtractor`` with ONNX ``RoiAlign``)."""
        count = extractor.num_inputs
        batch = torch.zeros(boxes.shape[0], dtype=torch.long,
                            device=boxes.device)
        rois = torch.cat([batch.to(boxes)[:, None], boxes], 1)
        levels = extractor.map_roi_levels(rois, count)
        out = None
        for level, layer in enumerate(extractor.roi_layers[:count]):
            pooled = RoiAlignOp.apply(
                feats[level], boxes, batch, *layer.output_size,
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


def prepare_images(model, cfg, paths, size):
    """Images through the config's test pipeline and the model's data
    preprocessor, zero-padded to ``size``.

    Returns:
        list[tuple[Tensor, DetDataSample]]: Per image the ``(1, 3, H, W)``
        input and a data sample whose metadata describes the padded input
        as the image (so that mmdet's ``predict`` clips and pastes as the
        exported graph does).
    """
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    from mmdet.structures import DetDataSample
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    steps = [t for t in cfg.test_dataloader.dataset.pipeline
             if t['type'] != 'LoadAnnotations']
    pipeline = Compose(steps)
    height, width = size
    out = []
    for path in paths:
        data = pipeline(dict(img_path=path, img_id=0))
        batch = model.data_preprocessor(
            dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
            False)
        image = batch['inputs']
        if image.shape[-2] > height or image.shape[-1] > width:
            raise DeployError(f'{path}: {tuple(image.shape[-2:])} after the '
                              f'test pipeline, larger than the export size '
                              f'{size}')
        image = F.pad(image, (0, width - image.shape[-1], 0,
                              height - image.shape[-2]))
        meta = dict(img_shape=size, ori_shape=size, pad_shape=size,
                    batch_input_shape=size, scale_factor=(1., 1.))
        out.append((image, DetDataSample(metainfo=meta)))
    return out


def mask_iou(a, b):
    """IoU of two boolean masks (1 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1. if union == 0 else np.logical_and(a, b).sum() / union


def box_iou(a, b):
    """IoU of two ``(x1, y1, x2, y2)`` boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.) * max(h, 0.)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) \
        - inter
    return inter / union if union > 0 else 0.


def compare_detections(torch_result, onnx_outputs, nms_iou=0.5):
    """ONNX detections against mmdet's ``predict`` of one image.

    Detections are matched by label and box, not by rank (nearly equal
    scores may swap places). Where two boxes of one class overlap with
    equal scores, NMS keeps either: mmcv's kernel and onnxruntime's
    NonMaxSuppression break such ties differently. A PyTorch detection
    left without a match therefore counts as ``tied``, not unmatched, when
    an ONNX detection of its label has its score (within 1e-6) and
    overlaps it at least at ``nms_iou`` (so that one suppresses the
    other: the R-CNN's NMS threshold, ``test_cfg.rcnn.nms.iou_threshold``).

    Returns:
        dict: ``count`` (PyTorch), ``onnx_count``, ``unmatched`` (PyTorch
        detections without an ONNX one of the same label within the
        tolerance, ties excepted), ``tied``, ``box_rel_diff`` (largest,
        relative to the box scale), ``score_diff`` and ``min_mask_iou``
        (None without masks) over the matched detections.
    """
    boxes = torch_result.bboxes.numpy()
    scores = torch_result.scores.numpy()
    labels = torch_result.labels.numpy()
    masks = torch_result.masks.numpy() if 'masks' in torch_result else None
    o_boxes, o_scores, o_labels = onnx_outputs[:3]
    valid = o_labels >= 0
    o_boxes, o_scores, o_labels = o_boxes[valid], o_scores[valid], \
        o_labels[valid]
    o_masks = onnx_outputs[3][valid] if len(onnx_outputs) > 3 else None
    scale = max(float(np.abs(boxes).max()) if len(boxes) else 1., 1.)
    used, worst_box, worst_score, worst_iou, left = set(), 0., 0., 1., []
    for i in range(len(boxes)):
        candidates = [j for j in range(len(o_boxes))
                      if j not in used and o_labels[j] == labels[i]]
        diffs = [np.abs(o_boxes[j] - boxes[i]).max() / scale
                 for j in candidates]
        if not candidates or min(diffs) > 1e-3:
            left.append(i)
            continue
        j = candidates[int(np.argmin(diffs))]
        used.add(j)
        worst_box = max(worst_box, min(diffs))
        worst_score = max(worst_score, abs(float(o_scores[j] - scores[i])))
        if masks is not None:
            worst_iou = min(worst_iou, mask_iou(masks[i], o_masks[j]))
    tied = 0
    for i in left:
        ties = [j for j in range(len(o_boxes))
                if j not in used and o_labels[j] == labels[i]
                and abs(float(o_scores[j] - scores[i])) <= 1e-6
                and box_iou(boxes[i], o_boxes[j]) >= nms_iou]
        if ties:
            used.add(ties[0])
            tied += 1
    return dict(count=len(boxes), onnx_count=int(valid.sum()),
                unmatched=len(left) - tied, tied=tied,
                box_rel_diff=worst_box,
                score_diff=worst_score,
                min_mask_iou=None if masks is None else worst_iou)


def check_detector_onnx(model, cfg, path, images, size):
    """Run the ONNX file in onnxruntime and mmdet's ``predict`` on each
    image; :func:`compare_detections` per image."""
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    nms_iou = model.roi_head.test_cfg.nms.iou_threshold
    results = []
    for image, sample in prepare_images(model, cfg, images, size):
        with torch.no_grad():
            expected = model.predict(image, [sample], rescale=False)[0]
        got = session.run(None, {'image': image.numpy()})
        results.append(dict(compare_detections(expected.pred_instances, got,
                                               nms_iou),
                            image=osp.basename(images[len(results)])))
    return results


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
