"""mmdet's CocoDataset that checks its annotation file and images."""
import logging
import os.path as osp
from collections import defaultdict

from mmdet.datasets import CocoDataset
from mmengine.fileio import get_local_path
from mmengine.logging import print_log

from mmpartial.utils.paths import is_local_path
from .bad_images import SkipBadImagesMixin
from .coco_annotation_checks import check_annotations, format_problem
from .coco_format import load_coco_json


def missing_coco_message(ann_file):
    """What to do when a COCO annotation file is not on disk."""
    root = osp.dirname(osp.dirname(ann_file.rstrip('/'))) or '.'
    return (
        f'COCO annotation file {ann_file!r} does not exist. The COCO configs '
        f'expect COCO 2017 under {root}/: annotations/instances_train2017.'
        'json, annotations/instances_val2017.json, train2017/*.jpg and '
        'val2017/*.jpg (set data_root, or link the folder to data/coco). '
        'Without COCO, configs/mask-rcnn_partialnet-t0_toy.py runs on the '
        'embedded toy set (bash tools/demo.sh writes it).')


class CheckedCocoDataset(SkipBadImagesMixin, CocoDataset):
    """:class:`mmdet.datasets.CocoDataset` that survives bad data.

    Used as ``type='mmpartial.CheckedCocoDataset'`` with the arguments of
    ``CocoDataset``. On top of it:

    - An annotation file that is not COCO at all (not JSON, not an object,
      no ``images``/``annotations``/``categories`` lists, images without
      ``id``/``file_name``/``width``/``height``, ...) raises
      :class:`~mmpartial.datasets.CocoFormatError` naming the file, when
      the dataset is built, before any training.
    - Annotations that cannot be used (see
      :func:`~mmpartial.datasets.coco_annotation_checks.check_annotations`:
      polygons of fewer than three points, degenerate boxes, unknown
      category or image ids, ...) are skipped, each with one warning line
      naming the json file, the image file and the annotation id, and a
      summary line at the end. They are kept in ``annotation_problems``.
    - An image that is missing or not decodable is skipped at load time
      with a warning naming the file (see :class:`SkipBadImagesMixin`).

    Images without annotations are kept or dropped by ``filter_cfg``
    exactly as by ``CocoDataset``; so are annotations of categories that
    are in the file but not in ``metainfo['classes']``.
    """

    def load_data_list(self):
        """Load, check and parse the annotation file.

        Returns:
            list[dict]: One data info per image, as ``CocoDataset`` makes.
        """
        if is_local_path(self.ann_file) and not osp.isfile(self.ann_file):
            raise FileNotFoundError(missing_coco_message(self.ann_file))
        with get_local_path(self.ann_file,
                            backend_args=self.backend_args) as local_path:
            coco = load_coco_json(local_path, name=self.ann_file,
                                  require_annotations=not self.test_mode)
        annotations, self.annotation_problems = check_annotations(
            coco, check_masks=self._pipeline_loads_masks())
        self._report(self.annotation_problems, len(annotations))

        # What CocoDataset gets from pycocotools, from the checked list:
        # label order is the file's category order, not the classes' order.
        classes = self.metainfo['classes']
        self.cat_ids = [category['id'] for category in coco['categories']
                        if category['name'] in classes]
        self.cat2label = {cat_id: i for i, cat_id in enumerate(self.cat_ids)}
        self.cat_img_map = defaultdict(list)
        annotations_of = defaultdict(list)
        for ann in annotations:
            annotations_of[ann['image_id']].append(ann)
            self.cat_img_map[ann['category_id']].append(ann['image_id'])
        return [
            self.parse_data_info({
                'raw_img_info': dict(image, img_id=image['id']),
                'raw_ann_info': annotations_of[image['id']],
            }) for image in coco['images']
        ]

    def _pipeline_loads_masks(self):
        # LoadAnnotations(with_mask=True) needs a mask on every instance.
        return any(getattr(transform, 'with_mask', False)
                   for transform in getattr(self.pipeline, 'transforms', []))

    def _report(self, problems, num_kept):
        for problem in problems:
            print_log(format_problem(self.ann_file, problem),
                      logger='current', level=logging.WARNING)
        if problems:
            skipped = sum(problem.skipped for problem in problems)
            print_log(
                f'{self.ann_file}: {len(problems)} annotation problem(s): '
                f'{skipped} annotation(s) skipped, {len(problems) - skipped} '
                f'kept without their bad polygons; {num_kept} annotations '
                'are used', logger='current', level=logging.WARNING)
