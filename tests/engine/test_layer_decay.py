"""LayerDecayOptimWrapperConstructor (mmpartial.engine.layer_decay): per
parameter lr = lr x rate ** (num_layers - 1 - depth) for a classifier, a
detector and a segmentor built from the layer-decay configs, every other
option of paramwise_cfg as mmengine's default constructor applies it, bad
input refused; and mmpretrain's own constructor on a PartialNet classifier.
"""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import DefaultOptimWrapperConstructor, build_optim_wrapper
from torch import nn

from conftest import REPO
from fast_config_parsing import fast_config_parsing  # noqa: F401
from mmpartial.apis import build_model
from mmpartial.engine import LayerDecayOptimWrapperConstructor
from toy_detection import make_toy_set, toy_detection_cfg

pytestmark = pytest.mark.usefixtures('fast_config_parsing')

CONSTRUCTOR = 'mmpartial.LayerDecayOptimWrapperConstructor'
T0_DIMS = [32, 64, 128, 256]
T0_BLOCKS = 13  # 1 + 2 + 8 + 2: 15 depths
# The configs' T2 shrunk to T0 (the same wiring, faster to build).
SMALL = {
    'partialnet-t2_in1k_layer-decay.py': dict(
        model=dict(backbone=dict(arch='t0'), head=dict(in_channels=256))),
    'mask-rcnn_partialnet-t2_coco_layer-decay.py': dict(
        model=dict(backbone=dict(arch='t0'), neck=dict(in_channels=T0_DIMS))),
    'upernet_partialnet-t2_ade20k_layer-decay.py': dict(
        model=dict(backbone=dict(arch='t0'),
                   decode_head=dict(in_channels=T0_DIMS, channels=64),
                   auxiliary_head=dict(in_channels=128, channels=32))),
}


def small(config):
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    cfg.merge_from_dict(SMALL[config])
    if cfg.optim_wrapper.type == 'AmpOptimWrapper':
        # It needs a GPU; the parameter groups are the constructor's alone.
        cfg.optim_wrapper.type = 'OptimWrapper'
        del cfg.optim_wrapper.loss_scale
    return cfg


def groups_by_name(optim_wrapper, model):
    names = {id(param): name for name, param in model.named_parameters()}
    groups = {}
    for group in optim_wrapper.optimizer.param_groups:
        assert len(group['params']) == 1
        name = names[id(group['params'][0])]
        assert name not in groups, name
        groups[name] = group
    return groups


def expected_lr(model, name, base_lr, rate):
    depth, num_layers = model.backbone.get_layer_depth(name, 'backbone.')
    assert num_layers == T0_BLOCKS + 2
    return base_lr * rate**(num_layers - 1 - depth)


@pytest.mark.parametrize('config', sorted(SMALL))
def test_lr_of_every_group_follows_the_depth(config):
    cfg = small(config)
    paramwise = cfg.optim_wrapper.paramwise_cfg
    assert cfg.optim_wrapper.constructor == CONSTRUCTOR
    assert paramwise.layer_decay_rate == 0.8
    assert cfg.model.backbone.init_cfg.checkpoint == \
        'work_dirs/partialnet-t2_in1k/epoch_300.pth'
    model = build_model(cfg)  # in the config's scope: mmpretrain/det/seg
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(wrapper.optimizer, torch.optim.AdamW)
    groups = groups_by_name(wrapper, model)
    assert set(groups) == {name for name, p in model.named_parameters()
                           if p.requires_grad}
    base_lr = cfg.optim_wrapper.optimizer.lr
    for name, group in groups.items():
        assert group['lr'] == pytest.approx(
            expected_lr(model, name, base_lr, 0.8)), name
    # Anchors of the convention: the stem slowest, the backbone's output
    # norms and everything after the backbone at the full rate.
    stem = groups['backbone.downsample_layers.0.conv.weight']['lr']
    assert stem == pytest.approx(base_lr * 0.8**14)
    block = groups['backbone.stages.2.0.mlp.fc2.weight']['lr']
    merge = groups['backbone.downsample_layers.2.conv.weight']['lr']
    assert merge == block == pytest.approx(base_lr * 0.8**10)
    outside = [name for name in groups if not name.startswith('backbone.')]
    outside += [name for name in groups if name.startswith('backbone.norm')]
    assert outside
    assert {groups[name]['lr'] for name in outside} == {base_lr}


def test_segmentor_keeps_the_base_configs_norm_and_bias_table_decay():
    cfg = small('upernet_partialnet-t2_ade20k_layer-decay.py')
    model = build_model(cfg)
    groups = groups_by_name(build_optim_wrapper(model, cfg.optim_wrapper),
                            model)
    wd = cfg.optim_wrapper.optimizer.weight_decay
    tables = [name for name in groups if name.endswith('bias_table')]
    norms = [name for name, module in model.named_modules()
             if isinstance(module, (nn.modules.batchnorm._BatchNorm,
                                    nn.LayerNorm, nn.GroupNorm))]
    assert tables and norms
    for name in tables:
        assert groups[name]['weight_decay'] == 0
    for name in norms:
        assert groups[f'{name}.weight']['weight_decay'] == 0
    assert groups['backbone.stages.0.0.mlp.fc1.weight']['weight_decay'] == wd


def test_other_paramwise_options_apply_as_in_mmengines_constructor():
    cfg = small('partialnet-t2_in1k_layer-decay.py')
    model = build_model(cfg)
    options = dict(
        norm_decay_mult=0., bias_decay_mult=0.5,
        custom_keys={'.bias_table': dict(decay_mult=0.),
                     'head': dict(lr_mult=2., decay_mult=3.),
                     'stages.1': dict(lr_mult=0.5)})
    optim_cfg = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.1))
    ours = groups_by_name(LayerDecayOptimWrapperConstructor(
        optim_cfg, dict(options, layer_decay_rate=0.7))(model), model)
    plain = groups_by_name(DefaultOptimWrapperConstructor(
        optim_cfg, options)(model), model)
    assert set(ours) == set(plain)
    for name, group in ours.items():
        # Every option as mmengine sets it; the lr (its lr_mult included)
        # times the depth's scale.
        assert {k: v for k, v in group.items() if k not in ('lr', 'params')} \
            == {k: v for k, v in plain[name].items()
                if k not in ('lr', 'params')}, name
        assert group['lr'] == pytest.approx(
            plain[name]['lr'] * expected_lr(model, name, 1., 0.7)), name
    # Spot checks of what mmengine's options mean here.
    head = [name for name in ours if name.startswith('head.')]
    assert head and all(ours[name]['lr'] == pytest.approx(2e-3)
                        for name in head)
    assert all(ours[name]['weight_decay'] == pytest.approx(0.3)
               for name in head)
    block = 'backbone.stages.1.0.mlp.fc2.weight'  # depth 2 of 15
    assert ours[block]['lr'] == pytest.approx(1e-3 * 0.5 * 0.7**12)
    assert ours['backbone.downsample_layers.0.bn.weight'][
        'weight_decay'] == 0
    assert ours['backbone.downsample_layers.0.bn.bias']['weight_decay'] == 0
    tables = [name for name in ours if name.endswith('bias_table')]
    assert tables and all(ours[name]['weight_decay'] == 0 for name in tables)


def test_rate_one_is_plain_adamw():
    cfg = small('partialnet-t2_in1k_layer-decay.py')
    cfg.optim_wrapper.paramwise_cfg.layer_decay_rate = 1
    model = build_model(cfg)
    groups = build_optim_wrapper(model, cfg.optim_wrapper).param_groups
    lr = cfg.optim_wrapper.optimizer.lr
    assert {group['lr'] for group in groups} == {lr}


@pytest.mark.parametrize('rate', [0, -0.5, 1.5, float('nan'), '0.8', True])
def test_bad_rate_is_a_value_error_naming_it(rate):
    with pytest.raises(ValueError, match=r'layer_decay_rate must be a number '
                       r'in \(0, 1\].*got ' + repr(rate).replace('.', r'\.')):
        LayerDecayOptimWrapperConstructor(
            dict(optimizer=dict(type='AdamW', lr=1e-3)),
            dict(layer_decay_rate=rate))


def test_missing_rate_is_a_value_error():
    for paramwise_cfg in (None, dict(norm_decay_mult=0.)):
        with pytest.raises(ValueError, match='needs paramwise_cfg.layer_deca'):
            LayerDecayOptimWrapperConstructor(
                dict(optimizer=dict(type='AdamW', lr=1e-3,
                                    weight_decay=0.05)), paramwise_cfg)


def test_backbone_without_get_layer_depth_is_named():
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='MobileNetV2', widen_factor=0.5),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=2, in_channels=1280)))
    constructor = LayerDecayOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=1e-3)),
        dict(layer_decay_rate=0.8))
    with pytest.raises(TypeError, match=r"ImageClassifier model's backbone, "
                       r'MobileNetV2, has none'):
        constructor(model)
    with pytest.raises(TypeError, match='the Linear model has no backbone'):
        constructor(nn.Linear(2, 2))


def test_mmpretrains_constructor_works_with_a_partialnet_classifier():
    from mmpretrain.engine.optimizers import \
        LearningRateDecayOptimWrapperConstructor
    cfg = small('partialnet-t2_in1k_layer-decay.py')
    model = build_model(cfg)
    optim_cfg = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
    theirs = groups_by_name(LearningRateDecayOptimWrapperConstructor(
        optim_cfg, dict(layer_decay_rate=0.8, norm_decay_mult=0.))(model),
        model)
    ours = groups_by_name(LayerDecayOptimWrapperConstructor(
        optim_cfg, dict(layer_decay_rate=0.8, norm_decay_mult=0.))(model),
        model)
    assert set(theirs) == set(ours)
    for name, group in theirs.items():
        assert group['lr'] == pytest.approx(
            expected_lr(model, name, 1e-3, 0.8)), name
        assert group['lr'] == pytest.approx(ours[name]['lr'])
        assert group['weight_decay'] == ours[name]['weight_decay'], name


@pytest.mark.slow
def test_train_tool_starts_with_the_detection_configs_decay(tmp_path):
    """The toy Mask R-CNN with the optim_wrapper settings of
    mask-rcnn_partialnet-t2_coco_layer-decay.py, through tools/train.py."""
    layer_decay = Config.fromfile(osp.join(
        REPO, 'configs', 'mask-rcnn_partialnet-t2_coco_layer-decay.py'))
    work = tmp_path / 'work'
    cfg = toy_detection_cfg(make_toy_set(tmp_path / 'toy'), work,
                            max_epochs=1)
    # The toy config's own backbone lr_mult stays and composes.
    cfg.optim_wrapper.constructor = layer_decay.optim_wrapper.constructor
    cfg.optim_wrapper.paramwise_cfg.update(
        layer_decay.optim_wrapper.paramwise_cfg)
    config = tmp_path / 'toy_layer_decay.py'
    cfg.dump(str(config))
    done = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), str(config),
         '--work-dir', str(work)], cwd=REPO, capture_output=True, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED='1'), timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert 'layer-wise lr decay 0.8 over 15 depths' in log
    assert 'depth 0 x0.044' in log and 'depth 14 x1 ' in log
    assert 'Epoch(train) [1][4/4]' in log
    assert (work / 'epoch_1.pth').exists()
