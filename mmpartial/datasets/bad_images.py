"""Skip images that cannot be loaded, say which, and go on training.

On a shared cluster a few files of a large dataset go missing or get cut
off. mmcv's ``LoadImageFromFile`` then raises in a dataloader worker and
the whole run dies. mmengine's ``BaseDataset.__getitem__`` already knows
how to use another sample: it draws a random index whenever
``prepare_data`` returns None. :class:`SkipBadImagesMixin` makes
``prepare_data`` return None for an image that cannot be read or decoded,
after a warning naming the file; any other pipeline error (a bug, a bad
annotation) is raised as before.
"""
import logging

import numpy as np
from mmengine.fileio import get as get_file_bytes
from mmengine.logging import print_log

from .errors import ImageLoadError

# Known-bad indices are avoided by _rand_another; drawing blindly first is
# cheaper while few are bad, listing the good ones is certain when many are.
_BLIND_DRAWS = 32


def find_image_problem(path, backend_args=None):
    """Why the image at ``path`` cannot be loaded, or None if it can.

    Args:
        path (str): Image path or URI.
        backend_args (dict, optional): mmengine file backend arguments.

    Returns:
        str | None: A short reason, e.g. ``'file not found'``.
    """
    try:
        data = get_file_bytes(path, backend_args=backend_args)
    except FileNotFoundError:
        return 'file not found'
    except OSError as exc:
        return f'cannot be read ({exc.strerror or exc})'
    if not data:
        return 'the file is empty'
    import mmcv  # mmcv comes with mmdet/mmpretrain; not needed before
    try:
        image = mmcv.imfrombytes(data)
    except Exception as exc:  # the PIL/turbojpeg backends raise
        return f'not a decodable image ({exc})'
    if image is None:  # the cv2 backend returns None
        return f'not a decodable image ({len(data)} bytes)'
    return None


class SkipBadImagesMixin:
    """Use another sample when an image cannot be loaded.

    Put it first among the bases of an mmengine ``BaseDataset`` subclass
    whose data infos have an ``img_path``. In training, an image that is
    missing or not decodable is reported once per process (a warning naming
    the file) and another random sample is used; known-bad images are not
    drawn again. The dataset fails with :class:`ImageLoadError` when every
    image is bad, or when ``max_refetch + 1`` images in a row are, rather
    than looping. In test mode no sample may be replaced (an evaluation
    needs every image), so a bad image is an :class:`ImageLoadError` naming
    the file.
    """

    def __init__(self, *args, **kwargs):
        self._bad_indices = set()
        self._bad_in_a_row = 0
        super().__init__(*args, **kwargs)

    def prepare_data(self, idx):
        """Run the pipeline on sample ``idx``; None if its image is bad."""
        if idx in self._bad_indices:
            return self._bad_again()
        try:
            data = super().prepare_data(idx)
        except Exception:
            path = self.get_data_info(idx).get('img_path')
            reason = None if path is None else find_image_problem(
                path, getattr(self, 'backend_args', None))
            if reason is None:
                raise  # the image is fine: a real pipeline error
            return self._bad_image(idx, path, reason)
        if data is not None:
            self._bad_in_a_row = 0
        return data

    def _bad_image(self, idx, path, reason):
        if self.test_mode:
            raise ImageLoadError(
                f'{path}: {reason}; in test mode every image is needed, '
                'so fix or remove it (and its annotations)') from None
        self._bad_indices.add(idx)
        print_log(f'{path}: {reason}; skipped, another sample is used',
                  logger='current', level=logging.WARNING)
        if len(self._bad_indices) >= len(self):
            raise ImageLoadError(
                f'none of the {len(self)} images of this dataset can be '
                f'loaded (the last one: {path}: {reason}); check data_root '
                'and the image folder (data_prefix)') from None
        return self._bad_again()

    def _bad_again(self):
        self._bad_in_a_row += 1
        if self._bad_in_a_row > self.max_refetch:
            raise ImageLoadError(
                f'{self._bad_in_a_row} images in a row cannot be loaded '
                f'({len(self._bad_indices)} bad images found so far, see '
                'the warnings above); check data_root and the image '
                'folder (data_prefix)')
        return None

    def _rand_another(self):
        """A random index, not one of the images known to be bad."""
        for _ in range(_BLIND_DRAWS):
            idx = super()._rand_another()
            if idx not in self._bad_indices:
                return idx
        good = [i for i in range(len(self)) if i not in self._bad_indices]
        return good[np.random.randint(len(good))]
