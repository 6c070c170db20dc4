"""A tiny toy-COCO set and a fast detection config for tests."""
import os.path as osp

from mmengine.config import Config

from conftest import REPO
from mmpartial.datasets.toy import make_toy_coco


def make_toy_set(root, num_train=8, num_val=4):
    make_toy_coco(str(root), num_train=num_train, num_val=num_val, seed=3)
    return str(root)


def toy_detection_cfg(data_root, work_dir, max_epochs=2, **extra):
    """configs/mask-rcnn_partialnet-t0_toy.py on ``data_root``, made
    deterministic (no dropout, no flips, no workers) and short."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'mask-rcnn_partialnet-t0_toy.py'))
    data_root = data_root.rstrip('/') + '/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        cfg[loader].batch_size = 2
        cfg[loader].dataset.data_root = data_root
    cfg.train_dataloader.dataset.pipeline = [
        t for t in cfg.train_dataloader.dataset.pipeline
        if t.type != 'RandomFlip'
    ]
    cfg.val_evaluator.ann_file = data_root + \
        'annotations/instances_val2017.json'
    cfg.test_evaluator = cfg.val_evaluator
    cfg.model.backbone.attn_drop_rate = 0.
    cfg.model.backbone.proj_drop_rate = 0.
    cfg.train_cfg.max_epochs = max_epochs
    cfg.train_cfg.val_interval = 100
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0, deterministic=False)
    cfg.work_dir = str(work_dir)
    cfg.merge_from_dict(extra)
    return cfg
