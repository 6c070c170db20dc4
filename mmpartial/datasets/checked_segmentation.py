"""mmseg's segmentation datasets that check their label maps and palette.

A label map (index PNG) with a value that is not a class reaches the loss
unnoticed in mmseg: the cross-entropy then fails with an index error (a
device-side assert on a GPU) that names neither the value nor the file,
and the IoU metric silently drops such pixels. A palette whose length does
not fit the classes fails with a message that prints the whole metainfo.
Here both are errors that say what is wrong, and where.
"""
import logging
import os.path as osp

import numpy as np
from mmengine.logging import print_log
from mmseg.datasets import ADE20KDataset, BaseSegDataset
from mmseg.datasets.transforms import LoadAnnotations

from mmpartial.utils.paths import is_local_path
from .bad_images import SkipBadImagesMixin

# Files named in one error at most; the rest are counted.
_MAX_NAMED = 10


class SegLabelError(ValueError):
    """Label maps that cannot be trained on or evaluated: values that are
    neither a class nor the ignore index, or files that are missing."""


class PaletteError(ValueError):
    """A palette that does not give one RGB colour per class."""


def _describe_classes(classes):
    shown = ', '.join(map(repr, classes[:6]))
    more = f', ... ({len(classes)} in all)' if len(classes) > 6 else ''
    return f'({shown}{more})'


def check_palette(palette, classes, where='metainfo'):
    """Raise :class:`PaletteError` unless ``palette`` has one (R, G, B)
    colour of integers in [0, 255] per class, in class order."""
    classes = list(classes or [])
    palette = list(palette)
    for i, colour in enumerate(palette):
        values = list(colour) if isinstance(colour, (list, tuple)) else None
        if values is None or len(values) != 3 or not all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                and 0 <= v <= 255 for v in values):
            raise PaletteError(
                f'{where}: palette entry {i} is {colour!r}; every entry must '
                'be an (R, G, B) triple of integers in [0, 255]')
    if len(palette) != len(classes):
        raise PaletteError(
            f'{where}: the palette has {len(palette)} colours but there are '
            f'{len(classes)} classes {_describe_classes(classes)}; give one '
            '(R, G, B) colour per class, in class order, or leave the '
            'palette out to get one colour per class drawn at random')


class SegLabelCheck:
    """A pipeline step, right after ``LoadAnnotations``: the label map it
    loaded holds only class indices and the ignore index, else
    :class:`SegLabelError` naming the file.

    It sees the labels as the loss will (after ``reduce_zero_label`` and
    the dataset's ``label_map``), over the whole map, before any crop.
    """

    def __init__(self, num_classes, ignore_index=255):
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def bad_values(self, label_map):
        """The values of ``label_map`` that are neither a class nor the
        ignore index, sorted."""
        values = np.unique(np.asarray(label_map))
        return [int(v) for v in values
                if not (0 <= v < self.num_classes or v == self.ignore_index)]

    def message(self, results, bad):
        """One line naming the file, the bad values and the valid ones."""
        path = results.get('seg_map_path', '<label map>')
        values = bad
        if results.get('reduce_zero_label') and \
                results.get('label_map') is None:
            # reduce_zero_label subtracted 1: say what the file holds.
            values = f'{bad} (file values {[v + 1 for v in bad]}, ' \
                'reduce_zero_label subtracts 1 and ignores 0)'
        return (f'{path}: label values {values} are not classes: this '
                f'dataset has {self.num_classes} classes (labels 0-'
                f'{self.num_classes - 1}) and ignores '
                f'{self.ignore_index}; fix the file, or the classes in '
                'metainfo')

    def __call__(self, results):
        bad = self.bad_values(results['gt_seg_map'])
        if bad:
            raise SegLabelError(self.message(results, bad))
        return results

    def __repr__(self):
        return (f'{type(self).__name__}(num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')


class CheckedSegDataset(SkipBadImagesMixin, BaseSegDataset):
    """:class:`mmseg.datasets.BaseSegDataset` that checks its data.

    Used as ``type='mmpartial.CheckedSegDataset'`` with the arguments of
    ``BaseSegDataset``. On top of it:

    - A ``metainfo`` palette that does not give one (R, G, B) colour per
      class raises :class:`PaletteError` when the dataset is built.
    - A label map with a value that is neither a class index nor
      ``ignore_index`` raises :class:`SegLabelError` naming the file and
      the values, as soon as the pipeline's ``LoadAnnotations`` loads it
      (training and testing alike), not in the loss.
    - ``scan_labels=True`` reads every label map when the dataset is built
      and names all bad files in one error, before any training (one PNG
      read per image: seconds for small sets, minutes for ADE20K).
    - Images without a label map are an error naming them, when built.
    - An image that is missing or not decodable is skipped in training and
      an error in testing (see :class:`SkipBadImagesMixin`).

    Args:
        scan_labels (bool): Check every label map when built. Defaults to
            False (each map is checked when it is loaded).
        **kwargs: The arguments of ``BaseSegDataset``.
    """

    def __init__(self, scan_labels=False, **kwargs):
        self.scan_labels = scan_labels
        metainfo = kwargs.get('metainfo') or {}
        if 'palette' in metainfo:
            classes = metainfo.get('classes',
                                   type(self).METAINFO.get('classes'))
            check_palette(metainfo['palette'], classes)
        super().__init__(**kwargs)
        transforms = getattr(self.pipeline, 'transforms', [])
        for i in reversed(range(len(transforms))):
            if isinstance(transforms[i], LoadAnnotations):
                transforms.insert(i + 1, self.label_check)

    @property
    def label_check(self):
        """The :class:`SegLabelCheck` of this dataset's classes."""
        return SegLabelCheck(len(self.metainfo['classes']),
                             self.ignore_index)

    def full_init(self):
        if self._fully_initialized:
            return
        super().full_init()
        if self.scan_labels:
            self.check_all_labels()

    def load_data_list(self):
        """``BaseSegDataset``'s list, checked: every image has its label
        map (local files only)."""
        data_list = super().load_data_list()
        self._check_seg_maps_exist(data_list)
        return data_list

    def _check_seg_maps_exist(self, data_list):
        paths = [info['seg_map_path'] for info in data_list
                 if info.get('seg_map_path')]
        missing = [p for p in paths if is_local_path(p) and
                   not osp.isfile(p)]
        if missing:
            raise SegLabelError(
                f'{len(missing)} of {len(paths)} images have no label map: '
                f'{self._list(missing)} (expected next to the images\' '
                f'names under {self.data_prefix.get("seg_map_path")!r}, '
                f'with suffix {self.seg_map_suffix!r})')

    def check_all_labels(self):
        """Read every label map; raise :class:`SegLabelError` naming all
        files with values that are not classes."""
        load = LoadAnnotations(backend_args=self.backend_args)
        problems = []
        for idx in range(len(self)):
            info = self.get_data_info(idx)
            if not info.get('seg_map_path'):
                continue
            results = load(dict(info, seg_fields=[]))
            bad = self.label_check.bad_values(results['gt_seg_map'])
            if bad:
                problems.append(self.label_check.message(results, bad))
        if problems:
            for line in problems:
                print_log(line, logger='current', level=logging.ERROR)
            raise SegLabelError(
                f'{len(problems)} of {len(self)} label maps hold values that '
                f'are not classes: {self._list(problems)}')

    @staticmethod
    def _list(lines):
        more = f'; ... and {len(lines) - _MAX_NAMED} more' \
            if len(lines) > _MAX_NAMED else ''
        return '; '.join(lines[:_MAX_NAMED]) + more


class CheckedADE20KDataset(CheckedSegDataset, ADE20KDataset):
    """:class:`mmseg.datasets.ADE20KDataset` (150 classes, file value 0
    ignored) with the checks of :class:`CheckedSegDataset`.

    Used as ``type='mmpartial.CheckedADE20KDataset'``.
    """
