"""tools/export_onnx.py (mmpartial.apis.export, .export_detector):
deploy-form ONNX with dynamic batch and image size, and whole detectors,
checked in onnxruntime."""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn

from deploy_helpers import (CLS_CONFIG, DET_CONFIG, run_tool,
                            save_train_checkpoint)
from mmpartial.apis.deploy import (DeployError, load_partialnet_config,
                                   reparameterize)
from mmpartial.apis.export import (build_deploy_model, check_onnx,
                                   export_onnx, export_target)
from mmpartial.apis.detector_onnx_check import (check_detector_onnx,
                                                compare_detections,
                                                prepare_images)
from mmpartial.apis.export_detector import (ExportableMaskRCNN,
                                            write_detector_onnx)
from mmpartial.datasets.toy import make_toy_coco

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

TOL = 1e-4


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp('onnx')
    cls, det = str(root / 'cls.pth'), str(root / 'det.pth')
    save_train_checkpoint(CLS_CONFIG, cls)
    save_train_checkpoint(DET_CONFIG, det)
    return dict(cls=cls, det=det, root=root)


def assert_parity(results):
    for shape, diff, relative in results:
        assert diff < TOL and relative < TOL, (shape, diff, relative)


@pytest.mark.slow
def test_classifier_logits_dynamic_batch_and_size(checkpoints):
    out = checkpoints['root'] / 'cls.onnx'
    done = run_tool('export_onnx', CLS_CONFIG, checkpoints['cls'], out,
                    '--img-size', 64, 64)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    assert 'dynamic batch and image size' in printed
    assert printed.count('onnxruntime vs PyTorch') == 2

    import onnx
    graph = onnx.load(str(out)).graph
    dims = [d.dim_param or d.dim_value
            for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ['batch', 3, 'height', 'width']
    # One file, other batch sizes and image sizes than it was traced with.
    model = build_deploy_model(CLS_CONFIG, checkpoints['cls'])
    assert model.backbone.deploy
    module, names = export_target(model, backbone_only=False)
    assert names == ['logits']
    assert_parity(check_onnx(module, str(out),
                             [(1, 3, 64, 64), (3, 3, 96, 128),
                              (2, 3, 160, 96)]))


@pytest.mark.slow
def test_backbone_from_deploy_checkpoint(checkpoints):
    deploy = str(checkpoints['root'] / 'det_deploy.pth')
    reparameterize(DET_CONFIG, checkpoints['det'], deploy)
    out = str(checkpoints['root'] / 'backbone.onnx')
    names, parity = export_onnx(DET_CONFIG, deploy, out, backbone_only=True,
                                deploy=True, img_size=(64, 96))
    assert names == ['stage0', 'stage1', 'stage2', 'stage3']
    assert [shape for shape, _, _ in parity] == [(1, 3, 64, 96),
                                                 (2, 3, 96, 160)]
    assert_parity(parity)
    model = build_deploy_model(DET_CONFIG, deploy, deploy=True)
    module, names = export_target(model, backbone_only=True)
    # 544 px: the last stage is 17x17, whose farthest positions (22.6
    # cells) fall into iRPE's logarithmic buckets; the exported graph
    # computes them for the runtime size.
    assert_parity(check_onnx(module, out, [(2, 3, 96, 64),
                                           (1, 3, 544, 544)]))


@pytest.mark.slow
def test_bad_requests(checkpoints):
    root = checkpoints['root']
    with pytest.raises(DeployError, match='--backbone-only'):
        export_onnx(DET_CONFIG, checkpoints['det'], str(root / 'det.onnx'))
    with pytest.raises(DeployError, match='train-form'):
        export_onnx(CLS_CONFIG, checkpoints['cls'], str(root / 'x.onnx'),
                    deploy=True)
    with pytest.raises(DeployError, match='at least 32'):
        export_onnx(CLS_CONFIG, checkpoints['cls'], str(root / 'x.onnx'),
                    img_size=(16, 64))
    existing = root / 'exists.onnx'
    existing.write_text('')
    with pytest.raises(DeployError, match='--overwrite'):
        export_onnx(CLS_CONFIG, checkpoints['cls'], str(existing))
    assert not osp.exists(root / 'det.onnx')
    # The tool says the same in one line.
    done = run_tool('export_onnx', CLS_CONFIG, checkpoints['cls'], existing)
    assert done.returncode != 0 and 'Traceback' not in done.stderr
    assert '--overwrite' in done.stderr.strip().splitlines()[-1]


@pytest.fixture(scope='module')
def detector(tmp_path_factory):
    """A toy Mask R-CNN checkpoint with well-spread scores, and toy val
    images."""
    root = tmp_path_factory.mktemp('detector')
    make_toy_coco(str(root / 'toy'), num_train=1, num_val=3, seed=3)
    path = str(root / 'det.pth')
    save_train_checkpoint(DET_CONFIG, path, spread_scores=True)
    images = sorted(glob.glob(str(root / 'toy' / 'val2017' / '*.jpg')))
    return dict(checkpoint=path, images=images, root=root)


# The toy detector's weights are random (with spread scores): thousands of
# its RPN scores are nearly equal, so the top-k cutoffs of the RPN
# (nms_pre, max_per_img) fall between near-ties, and float rounding (1e-6 of
# the features) decides which proposals pass in each runtime. The checks
# keep every proposal, so that the comparison tests the exported graph,
# not the rounding at a cutoff.
RPN_KEEP_ALL = dict(nms_pre=100000, max_per_img=100000)


def keep_every_proposal(rpn_cfg):
    rpn_cfg.update(RPN_KEEP_ALL)


@pytest.mark.slow
def test_detector_onnx_matches_pytorch(detector):
    """The whole deploy Mask R-CNN in onnxruntime: the same detections as
    mmdet's predict on the toy val images (boxes within 1e-3 relative,
    masks IoU >= 0.99), padding rows marked, only standard operators."""
    import onnx
    cfg = load_partialnet_config(DET_CONFIG)
    model = build_deploy_model(DET_CONFIG, detector['checkpoint'])
    assert model.backbone.deploy
    size = (320, 320)
    keep_every_proposal(model.rpn_head.test_cfg)
    # A score threshold halfway between two of the first image's
    # detections, so that there are fewer than max_per_img and the padding
    # rows are checked.
    image, sample = prepare_images(model, cfg, detector['images'][:1],
                                   size)[0]
    with torch.no_grad():
        scores = model.predict(image, [sample])[0].pred_instances.scores
    half = len(scores) // 2
    model.roi_head.test_cfg.score_thr = float(scores[half - 1:half + 1].mean())
    out = str(detector['root'] / 'mrcnn.onnx')
    names = write_detector_onnx(ExportableMaskRCNN(model, size).eval(), out)
    assert names == ['boxes', 'scores', 'labels', 'masks']
    graph = onnx.load(out).graph
    ops = {node.op_type for node in graph.node}
    assert {'RoiAlign', 'NonMaxSuppression', 'GridSample'} <= ops
    assert all(node.domain in ('', 'ai.onnx') for node in graph.node)
    checks = check_detector_onnx(model, cfg, out, detector['images'], size)
    assert len(checks) == len(detector['images'])
    assert 0 < checks[0]['count'] < len(scores), checks[0]
    for check in checks:
        assert check['onnx_count'] == check['count'], check
        assert check['unmatched'] == 0, check
        assert check['box_rel_diff'] <= 1e-3, check
        assert check['min_mask_iou'] >= .99, check


@pytest.mark.slow
def test_detector_tool(detector):
    out = detector['root'] / 'tool.onnx'
    done = run_tool('export_onnx', DET_CONFIG, detector['checkpoint'], out,
                    '--detector', '--check-images',
                    osp.dirname(detector['images'][0]), '--cfg-options',
                    *[f'model.test_cfg.rpn.{key}={value}'
                      for key, value in RPN_KEEP_ALL.items()])
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'exported the detector (input image 1x3x320x320' in done.stdout
    assert done.stdout.count('0 unmatched') == len(detector['images'])


@pytest.mark.slow
def test_detector_op_without_onnx_form_is_named(detector):
    model = build_deploy_model(DET_CONFIG, detector['checkpoint'])
    neck_forward = model.neck.forward

    def forward(inputs):
        outs = neck_forward(inputs)
        return (torch.cummax(outs[0], dim=1)[0], ) + tuple(outs[1:])

    model.neck.forward = forward
    wrapper = ExportableMaskRCNN(model, (64, 64)).eval()
    out = detector['root'] / 'bad.onnx'
    with pytest.raises(DeployError, match="'aten::cummax'"):
        write_detector_onnx(wrapper, str(out))
    assert not osp.exists(out) and not osp.exists(str(out) + '.tmp')


def test_detector_unsupported_part_is_named(detector):
    model = build_deploy_model(DET_CONFIG, detector['checkpoint'])
    model.roi_head.mask_head = nn.Identity()
    with pytest.raises(DeployError, match='roi_head.mask_head: Identity'):
        ExportableMaskRCNN(model, (64, 64))


def test_nms_ties_are_told_from_differences():
    """Two overlapping boxes of one class with equal scores: NMS may keep
    either (mmcv and onnxruntime break the tie differently), so the other
    box is a tie, not a mismatch; a box that moved, a changed score or a
    changed label still is one."""
    from mmengine.structures import InstanceData
    kept = np.array([[10., 10., 50., 50.], [60., 5., 90., 40.]], np.float32)
    torch_result = InstanceData(bboxes=torch.from_numpy(kept),
                                scores=torch.tensor([0.9999985, 0.8]),
                                labels=torch.tensor([0, 2]))

    def onnx_with(first_box, first_score=0.9999985, first_label=0):
        return [np.stack([np.array(first_box, np.float32), kept[1]]),
                np.array([first_score, 0.8], np.float32),
                np.array([first_label, 2])]

    same = compare_detections(torch_result, onnx_with(kept[0]))
    assert (same['unmatched'], same['tied']) == (0, 0)
    # NMS kept the tied neighbour (IoU 0.90 with the PyTorch box).
    other = compare_detections(torch_result, onnx_with([11, 12, 50, 51]))
    assert (other['unmatched'], other['tied']) == (0, 1)
    # Under an NMS that keeps boxes of IoU 0.90, they would not compete.
    loose = compare_detections(torch_result, onnx_with([11, 12, 50, 51]),
                               nms_iou=0.95)
    assert (loose['unmatched'], loose['tied']) == (1, 0)
    for changed in (onnx_with([11, 12, 50, 51], first_score=0.99),
                    onnx_with([11, 12, 50, 51], first_label=1),
                    onnx_with([40, 40, 80, 80])):
        check = compare_detections(torch_result, changed)
        assert (check['unmatched'], check['tied']) == (1, 0), check
