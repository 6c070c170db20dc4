"""Configs build through the registries of mmdet and mmpretrain, and the
classification configs have the spec's size."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import REPO, SPEC, VARIANTS, reference_param_count
from mmpartial.models import PartialNet


def build(config, scope):
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    return MODELS.build(cfg.model), cfg


def test_backbone_from_the_root_registry_by_scope():
    from mmengine.registry import MODELS
    model = MODELS.build(dict(type='mmpartial.PartialNet', arch='t1'))
    assert isinstance(model, PartialNet) and model.channels[0] == 48


def test_user_project_needs_only_custom_imports(tmp_path):
    # A user's own mmdet config: mmdet's base model, two lines for us.
    cfg_file = tmp_path / 'my_config.py'
    cfg_file.write_text(
        "_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'\n"
        "custom_imports = dict(imports=['mmpartial'], "
        "allow_failed_imports=False)\n"
        "model = dict(backbone=dict(_delete_=True, "
        "type='mmpartial.PartialNet', arch='t0', out_indices=(0, 1, 2, 3)),"
        " neck=dict(in_channels=[32, 64, 128, 256]))\n")
    cfg = Config.fromfile(str(cfg_file))
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    model = MODELS.build(cfg.model)
    assert isinstance(model.backbone, PartialNet)


@pytest.mark.parametrize('variant', VARIANTS)
def test_detection_configs_match_fpn_to_the_variant(variant):
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', f'mask-rcnn_partialnet-{variant}_coco.py'))
    backbone = cfg.model.backbone
    assert backbone.type == 'mmpartial.PartialNet' and backbone.arch == \
        variant and backbone.out_indices == (0, 1, 2, 3) and backbone.out_norm
    dim = PartialNet.arch_zoo[variant]['embed_dim']
    assert cfg.model.neck.in_channels == [dim, 2 * dim, 4 * dim, 8 * dim]
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.optimizer.lr == (1e-4 if variant in ('m', 'l')
                                              else 2e-4)
    assert cfg.train_cfg.max_epochs == 12 and \
        cfg.param_scheduler[1].milestones == [8, 11]
    assert cfg.param_scheduler[0].end == 500 and \
        cfg.auto_scale_lr.base_batch_size == 16
    assert backbone.init_cfg.type == 'Pretrained' and \
        backbone.init_cfg.prefix == 'backbone.'


def test_detector_builds_and_runs_from_mmdet_registry():
    model, _ = build('mask-rcnn_partialnet-t2_coco.py', 'mmdet')
    model.init_weights()  # checkpoint=None: starts from scratch, no error
    assert isinstance(model.backbone, PartialNet)
    feats = model.extract_feat(torch.randn(1, 3, 128, 160))
    assert [f.shape[1] for f in feats] == [256] * 5


@pytest.mark.parametrize('variant', VARIANTS)
def test_classifier_configs_have_spec_params_and_macs(variant):
    from mmengine.analysis import FlopAnalyzer
    model, cfg = build(f'partialnet-{variant}_in1k.py', 'mmpretrain')
    params = sum(p.numel() for p in model.parameters())
    assert params == reference_param_count(variant)
    assert round(params / 1e6, 2) == SPEC[variant][0]
    flops = FlopAnalyzer(model.eval(), torch.randn(1, 3, 224, 224))
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    macs = flops.total() / 1e9
    assert macs == pytest.approx(SPEC[variant][1], rel=0.01)


@pytest.mark.slow
def test_classification_recipe_per_variant():
    expect = dict(t0=(0.005, 0.05, None, None, 4096),
                  t1=(0.01, 0.1, 3, None, 4096),
                  t2=(0.02, 0.1, 5, None, 4096),
                  s=(0.03, 0.3, 7, None, 4096),
                  m=(0.05, 0.5, 7, 1.0, 2048),
                  l=(0.05, 0.7, 7, 0.01, 2048))
    for variant, (wd, mixup, magnitude, clip, batch) in expect.items():
        cfg = Config.fromfile(
            osp.join(REPO, 'configs', f'partialnet-{variant}_in1k.py'))
        opt = cfg.optim_wrapper
        assert opt.type == 'AmpOptimWrapper'
        assert opt.optimizer.weight_decay == wd
        assert opt.optimizer.lr == (4e-3 if batch == 4096 else 2e-3)
        assert cfg.auto_scale_lr.base_batch_size == batch
        assert (opt.get('clip_grad') or {}).get('max_norm') == clip
        augments = {a.type: a.alpha for a in cfg.model.train_cfg.augments}
        assert augments == dict(Mixup=mixup, CutMix=1.0)
        pipeline = cfg.train_dataloader.dataset.pipeline
        ra = [t for t in pipeline if t.type == 'RandAugment']
        assert (ra[0].magnitude_level if ra else None) == magnitude
        crop = [t for t in pipeline if t.type == 'RandomResizedCrop'][0]
        assert crop.scale == 192 and crop.interpolation == 'bicubic'
        test = cfg.test_dataloader.dataset.pipeline
        assert test[1].scale == 248 and test[2].crop_size == 224
        warmup, cosine = cfg.param_scheduler
        assert warmup.end == 20 and warmup.start_factor * \
            opt.optimizer.lr == pytest.approx(1e-6)
        assert cosine.eta_min == 1e-5 and cosine.end == 300
        assert cfg.model.head.loss.label_smooth_val == 0.1
        hook = cfg.custom_hooks[0]
        assert (hook.type, hook.switch_epoch, hook.size) == \
            ('mmpartial.TrainResolutionHook', 280, 224)


@pytest.mark.slow
def test_every_config_parses():
    for path in glob.glob(osp.join(REPO, 'configs', '*.py')):
        Config.fromfile(path)
