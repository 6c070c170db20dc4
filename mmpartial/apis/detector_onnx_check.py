"""Check an exported detector: onnxruntime against mmdet's ``predict``.

Both run on the same images, taken through the config's test pipeline and
zero-padded to the export size; their detections are matched by label and
box (:func:`compare_detections`).
"""
import os.path as osp

import numpy as np
import torch
from torch.nn import functional as F

from .deploy import DeployError


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
