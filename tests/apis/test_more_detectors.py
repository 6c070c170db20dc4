"""RetinaNet 1x and Cascade Mask R-CNN 3x with PartialNet: the configs
follow their recipes, fit every variant, and the detectors train."""
import os.path as osp

import pytest
import torch
from mmengine.optim import OptimWrapper

from conftest import REPO, VARIANTS
from fast_config_parsing import fast_config_parsing  # noqa: F401
from mmpartial.apis import build_model, load_config
from mmpartial.datasets.toy import CLASSES
from mmpartial.models import PartialNet
from toy_detection import make_toy_set

pytestmark = pytest.mark.usefixtures('fast_config_parsing')


def config_path(kind, variant):
    name = (f'retinanet_partialnet-{variant}_coco.py' if kind == 'retinanet'
            else f'cascade-mask-rcnn_partialnet-{variant}_coco-3x.py')
    return osp.join(REPO, 'configs', name)


def test_recipes_per_variant():
    for variant in VARIANTS:
        dim = PartialNet.arch_zoo[variant]['embed_dim']
        retina = load_config(config_path('retinanet', variant))
        assert retina.model.type == 'RetinaNet'
        assert retina.model.backbone.arch == variant
        assert retina.model.backbone.out_indices == (1, 2, 3)
        assert retina.model.neck.in_channels == [2 * dim, 4 * dim, 8 * dim]
        assert retina.model.neck.num_outs == 5
        assert retina.optim_wrapper.optimizer.type == 'AdamW'
        assert retina.optim_wrapper.optimizer.lr == 1e-4
        assert retina.train_cfg.max_epochs == 12
        assert retina.param_scheduler[1].milestones == [8, 11]
        assert retina.train_dataloader.dataset.type == \
            'mmpartial.CheckedCocoDataset'

        cascade = load_config(config_path('cascade', variant))
        assert cascade.model.type == 'CascadeRCNN'
        assert cascade.model.neck.in_channels == [dim * 2**i
                                                  for i in range(4)]
        assert cascade.optim_wrapper.optimizer.type == 'AdamW'
        assert cascade.optim_wrapper.optimizer.lr == \
            (1e-4 if variant in ('m', 'l') else 2e-4)
        assert cascade.train_cfg.max_epochs == 36
        assert cascade.param_scheduler[1].milestones == [27, 33]
        assert cascade.runner_type == 'mmpartial.CheckedRunner'


def test_multi_scale_training_pipeline_resizes_to_480_800(tmp_path):
    # The 3x pipeline, built by mmdet and run on toy COCO images.
    import mmpartial  # noqa: F401
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    from mmdet.registry import DATASETS
    cfg = load_config(config_path('cascade', 't0'))
    root = make_toy_set(tmp_path / 'coco', num_train=4, num_val=1)
    dataset = cfg.train_dataloader.dataset
    dataset.update(data_root=root + '/',
                   ann_file='annotations/instances_train2017.json',
                   data_prefix=dict(img='train2017/'),
                   metainfo=dict(classes=CLASSES))
    dataset = DATASETS.build(dataset)
    torch.manual_seed(0)
    sides = set()
    for _ in range(3):
        for index in range(len(dataset)):
            sample = dataset[index]
            height, width = sample['inputs'].shape[1:]
            assert max(height, width) <= 1333
            sides.add(min(height, width))
            assert sample['data_samples'].gt_instances.masks is not None
    # Short sides up to 800; crops can make them shorter than 480.
    assert max(sides) <= 800 and len(sides) > 1


def detection_batch(num_classes, with_mask):
    from mmdet.testing import demo_mm_inputs
    return demo_mm_inputs(batch_size=2, image_shapes=[(3, 128, 160),
                                                      (3, 96, 128)],
                          num_items=[3, 2], num_classes=num_classes,
                          with_mask=with_mask)


@pytest.mark.slow
@pytest.mark.parametrize('kind', ['retinanet', 'cascade'])
def test_detector_runs_a_training_step(kind):
    cfg = load_config(config_path(kind, 't0'))
    if kind == 'cascade':
        # Fewer proposals and RoIs than on COCO (2000 and 3 x 512 per
        # image): the same model, a step in seconds on a CPU.
        cfg.model.train_cfg.rpn_proposal.max_per_img = 200
        for stage in cfg.model.train_cfg.rcnn:
            stage.sampler.num = 64
    model = build_model(cfg)
    model.init_weights()
    assert isinstance(model.backbone, PartialNet)
    model.train()
    optimizer = OptimWrapper(torch.optim.AdamW(model.parameters(),
                                               lr=1e-4))
    before = next(model.backbone.parameters()).detach().clone()
    log = model.train_step(detection_batch(80, kind == 'cascade'),
                           optimizer)
    expected = {'loss_cls', 'loss_bbox'} if kind == 'retinanet' else {
        'loss_rpn_cls', 'loss_rpn_bbox', 's0.loss_cls', 's2.loss_bbox',
        's0.loss_mask', 's2.loss_mask'}
    assert expected <= set(log), sorted(log)
    assert all(torch.isfinite(torch.as_tensor(value))
               for value in log.values())
    after = next(model.backbone.parameters()).detach()
    assert not torch.equal(before, after)  # the backbone was updated
