"""mmpretrain's CustomDataset and ImageNet that check folders and images."""
import os.path as osp

from mmengine.fileio import get_file_backend
from mmpretrain.datasets import CustomDataset, ImageNet
from mmpretrain.datasets.custom import find_folders, get_samples

from .bad_images import SkipBadImagesMixin
from .errors import DatasetFolderError


class FolderChecksMixin:
    """Errors naming the folder or file where mmpretrain has none.

    For bases of mmpretrain's :class:`CustomDataset` (ImageNet is one).
    Without an annotation file, the image folder is scanned as by
    mmpretrain, but a folder that is missing, has no class folders, has a
    different number of class folders than ``classes``, or has a class
    folder without images raises
    :class:`~mmpartial.datasets.DatasetFolderError` naming the folder.
    (mmpretrain only warns about an empty class folder, which leaves a
    class that is never seen in training, and its other errors do not name
    the folder.) An annotation file that lists no image is an error naming
    the file.
    """

    def load_data_list(self):
        """Load the image list as mmpretrain does; refuse an empty one.

        Returns:
            list[dict]: One data info (``img_path``, ``gt_label``) per image.
        """
        data_list = super().load_data_list()
        if not data_list:
            source = self.ann_file or self.img_prefix
            raise DatasetFolderError(f'{source}: lists no image')
        return data_list

    def _find_samples(self):
        """Scan ``img_prefix`` like mmpretrain, with errors naming folders.

        Returns:
            list: ``(path, label)`` tuples, or paths when ``with_label`` is
            False.
        """
        root = self.img_prefix
        backend = get_file_backend(root, enable_singleton=True)
        if not backend.isdir(root):
            raise DatasetFolderError(
                f'{root}: image folder not found (data_root '
                f'{self.data_root!r}, data_prefix {self.data_prefix!r})')
        if not self.with_label:
            samples, _ = get_samples(root, None, self.is_valid_file, backend)
            if not samples:
                raise DatasetFolderError(f'{root}: {self._no_images()}')
            return samples

        classes, folder_to_idx = find_folders(root, backend)
        if not classes:
            raise DatasetFolderError(
                f'{root}: no class folders; expected one sub-folder of '
                f'images per class, like {osp.join(root, "<class>", "")}')
        if self.CLASSES is not None and len(self.CLASSES) != len(classes):
            raise DatasetFolderError(
                f'{root}: {len(classes)} class folders, but the dataset has '
                f'{len(self.CLASSES)} classes (set metainfo=dict(classes='
                '...) to the folder names)')
        samples, empty = get_samples(root, folder_to_idx, self.is_valid_file,
                                     backend)
        if empty:
            # A class without images would be a label the model never sees.
            folders = ', '.join(backend.join_path(root, folder)
                                for folder in sorted(empty))
            raise DatasetFolderError(
                f'{folders}: class folder(s) without images '
                f'({self._no_images()}); add images or remove the folder')
        self.folder_to_idx = folder_to_idx
        if self.CLASSES is None:
            self._metainfo['classes'] = tuple(classes)
        return samples

    def _no_images(self):
        return 'no image files (extensions: %s)' % ', '.join(
            sorted(self.extensions))


class CheckedCustomDataset(SkipBadImagesMixin, FolderChecksMixin,
                           CustomDataset):
    """:class:`mmpretrain.datasets.CustomDataset` that survives bad data.

    Used as ``type='mmpartial.CheckedCustomDataset'`` with the arguments of
    ``CustomDataset``. Folder problems are errors naming the folder (see
    :class:`FolderChecksMixin`); an image that is missing or not decodable
    is skipped at load time with a warning naming the file (see
    :class:`SkipBadImagesMixin`).
    """


class CheckedImageNet(SkipBadImagesMixin, FolderChecksMixin, ImageNet):
    """:class:`mmpretrain.datasets.ImageNet` that survives bad data.

    Used as ``type='mmpartial.CheckedImageNet'`` with the arguments of
    ``ImageNet``; checks as :class:`CheckedCustomDataset`.
    """
