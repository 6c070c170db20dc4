"""Export a PartialNet classifier (logits), backbone or whole detector to
ONNX.

Examples::

    # a classifier: deploy-form logits
    python tools/export_onnx.py configs/partialnet-t0_in1k.py \
        work_dirs/partialnet-t0_in1k/epoch_300.pth partialnet-t0.onnx

    # the backbone of a detector: its stage outputs
    python tools/export_onnx.py configs/mask-rcnn_partialnet-t2_coco.py \
        work_dirs/mask-rcnn_partialnet-t2_coco/epoch_12.pth \
        partialnet-t2_backbone.onnx --backbone-only --img-size 800 1280

    # a whole Mask R-CNN: image in, boxes, scores, labels and masks out,
    # checked against mmdet's predict on the toy val images
    python tools/export_onnx.py configs/mask-rcnn_partialnet-t0_toy.py \
        work_dirs/mask-rcnn_partialnet-t0_toy/epoch_7.pth mrcnn.onnx \
        --detector --check-images data/toy_coco/val2017

The exported graph is always the deploy form (folded norms, see
``PartialNet.switch_to_deploy``). CHECKPOINT is a train-form checkpoint,
switched to deploy form after loading, or, with ``--deploy`` (detected from
its meta too), one written by tools/reparameterize.py. Batch size and image
size are dynamic. The input is the normalised image tensor (the data
preprocessor's output, RGB, NCHW).

After exporting, the model is run in onnxruntime on random inputs of two
shapes (the export one, and a larger batch at another size) and compared
with PyTorch; the maximum differences are printed. ``--detector`` exports
the whole detector at a fixed input size (standard ONNX RoiAlign and
NonMaxSuppression in place of mmcv's ops) and compares its detections with
mmdet's ``predict`` on ``--check-images``. The logic is in
:mod:`mmpartial.apis.export` and :mod:`mmpartial.apis.export_detector`.
"""
import glob
import os.path as osp
import argparse
import sys

from mmengine.config import DictAction

from mmpartial.apis import ConfigError, ModelBuildError
from mmpartial.apis.deploy import DeployError
from mmpartial.apis.export import export_onnx
from mmpartial.apis.export_detector import export_detector_onnx
from mmpartial.models import PartialNet
from mmpartial.utils.checkpoint import CheckpointError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config of the model')
    parser.add_argument('checkpoint', help='checkpoint (train or deploy form)')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument('--backbone-only', action='store_true',
                        help='export the backbone (its outputs) instead of '
                        'the classifier (logits); needed for detectors')
    parser.add_argument('--detector', action='store_true',
                        help='export the whole Mask R-CNN (fixed input size)')
    parser.add_argument('--check-images', nargs='+', default=[],
                        metavar='IMAGE_OR_DIR',
                        help='--detector: compare with PyTorch on these '
                        'images (files, or folders of .jpg/.png)')
    parser.add_argument('--deploy', action='store_true',
                        help='CHECKPOINT is in deploy form (written by '
                        'tools/reparameterize.py)')
    parser.add_argument('--img-size', type=int, nargs=2, default=None,
                        metavar=('H', 'W'),
                        help='image size to trace with (the exported model '
                        f'takes any size >= {PartialNet.stride}); default '
                        '224 224; --detector: the fixed input size, default '
                        'the test Resize scale\'s longer side squared')
    parser.add_argument('--opset', type=int, default=17,
                        help='ONNX opset version (default 17)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace OUT if it exists')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    return parser.parse_args(argv)


def images_of(paths):
    found = []
    for path in paths:
        found += sorted(glob.glob(osp.join(path, '*.[jp][pn]g'))) \
            if osp.isdir(path) else [path]
    return found


def export_detector(args):
    names, size, checks = export_detector_onnx(
        args.config, args.checkpoint, args.out, deploy=args.deploy,
        img_size=args.img_size, opset=args.opset,
        cfg_options=args.cfg_options, overwrite=args.overwrite,
        check_images=images_of(args.check_images))
    print(f'exported the detector (input image 1x3x{size[0]}x{size[1]}; '
          f'outputs {", ".join(names)}) -> {args.out}')
    for check in checks:
        print(f'{check["image"]}: {check["count"]} detections in PyTorch, '
              f'{check["onnx_count"]} in onnxruntime, {check["unmatched"]} '
              f'unmatched, {check["tied"]} tied (equal scores, NMS kept '
              f'the other box); boxes within {check["box_rel_diff"]:.2g} '
              f'(relative), min mask IoU {check["min_mask_iou"]}')
    return checks


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.detector:
            checks = export_detector(args)
            if any(c['unmatched'] or c['count'] != c['onnx_count'] or
                   (c['min_mask_iou'] or 1) < .99 for c in checks):
                sys.exit('error: onnxruntime and PyTorch detections differ '
                         '(boxes by more than 1e-3 or masks IoU < 0.99)')
            return
        names, parity = export_onnx(
            args.config, args.checkpoint, args.out,
            backbone_only=args.backbone_only, deploy=args.deploy,
            img_size=args.img_size or (224, 224), opset=args.opset,
            cfg_options=args.cfg_options, overwrite=args.overwrite)
    except (DeployError, CheckpointError, ConfigError, ModelBuildError,
            FileNotFoundError) as err:
        sys.exit(f'error: {err}')
    print(f'exported {"the backbone" if args.backbone_only else "logits"} '
          f'(outputs {", ".join(names)}) with dynamic batch and image size '
          f'-> {args.out}')
    for shape, diff, rel in parity:
        print(f'onnxruntime vs PyTorch, input {shape}: max abs diff '
              f'{diff:.3g} (relative {rel:.3g})')


if __name__ == '__main__':
    main()
