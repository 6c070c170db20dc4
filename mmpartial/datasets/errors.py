"""Errors of the checked datasets.

They live apart from the datasets so that a caller can catch them without
importing mmdet or mmpretrain. Each message names the file or folder at
fault and what is wrong with it.
"""


class CocoFormatError(ValueError):
    """An annotation file that is not in COCO format at all.

    Raised while the dataset is built, before any training starts.
    """


class DatasetFolderError(ValueError):
    """An image folder that cannot make a classification dataset: missing,
    without images, or with a class folder that holds no image."""


class ImageLoadError(RuntimeError):
    """Images that cannot be loaded where no other sample may be used:
    in test mode, or because too many (or all) images of a dataset fail."""
