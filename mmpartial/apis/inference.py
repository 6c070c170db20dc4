"""Classify images with a trained classifier (``tools/infer.py``)."""
import os.path as osp

import torch
from mmengine.dataset import Compose

from .config import load_config, scope_of
from .model import build_model, load_model_checkpoint


def class_names(meta, cfg, num_classes):
    """Names of the classes: from the checkpoint's ``dataset_meta`` when
    training saved them, else from the config's test dataset, else
    numbers (``class 0``, ...)."""
    names = (meta or {}).get('dataset_meta', {}).get('classes')
    if not names:
        names = cfg.test_dataloader.dataset.get('metainfo', {}).get('classes')
    if not names or len(names) != num_classes:
        names = [f'class {i}' for i in range(num_classes)]
    return list(names)


class Classifier:
    """A classifier of a config and a checkpoint, with the config's test
    pipeline, ready to classify image files.

    Args:
        config (str): An mmpretrain classification config.
        checkpoint (str): Its weights (any path mmengine's loaders read);
            they must fit the model.
        device (str): Where to run. Defaults to ``'cpu'``.
        cfg_options (dict, optional): Config overrides.

    Raises:
        FileNotFoundError: The config does not exist.
        ValueError: It is not a classification config.
        CheckpointError: The checkpoint cannot be read or does not fit.
    """

    def __init__(self, config, checkpoint, device='cpu', cfg_options=None):
        cfg = load_config(config, cfg_options)
        if scope_of(cfg) != 'mmpretrain':
            raise ValueError(f'{config!r} is not a classification config '
                             '(default_scope must be mmpretrain)')
        self.cfg = cfg
        self.model = build_model(cfg)
        self.meta = load_model_checkpoint(self.model, checkpoint)
        self.model.to(device).eval()
        self.pipeline = Compose(cfg.test_dataloader.dataset.pipeline)

    def scores(self, image):
        """The class scores (softmax) of one image file."""
        if not osp.isfile(image):
            raise FileNotFoundError(f'image {image!r} does not exist')
        data = self.pipeline(dict(img_path=image))
        batch = self.model.data_preprocessor(
            dict(inputs=[data['inputs']],
                 data_samples=[data['data_samples']]), False)
        with torch.no_grad():
            return self.model(**batch, mode='predict')[0].pred_score

    def top_classes(self, image, topk=5):
        """The ``topk`` most likely classes of an image file.

        Returns:
            list[tuple[str, float]]: ``(name, score)``, best first.
        """
        scores = self.scores(image)
        names = class_names(self.meta, self.cfg, scores.numel())
        top = scores.topk(min(topk, scores.numel()))
        return [(names[idx], score.item())
                for score, idx in zip(top.values, top.indices)]
