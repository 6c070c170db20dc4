"""DPConv in the network and in training: the backbone option, the hook that
adds the regularisers to any model's losses, warm-up, deploy and the report
tool. The layer itself is tested in test_dpconv.py."""
import importlib.util
import json
import math
import os.path as osp
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import init_default_scope

import mmpartial  # noqa: F401  (registers models and hooks)
from mmpartial.engine import DPConvHook
from mmpartial.models import DPConv, PartialNet
from mmpartial.models.losses import DPConvLoss
from mmpartial.models.utils import dpconv_summary, named_dpconvs

from conftest import REPO

# A small PartialNet for training tests: 16/32/64/128 channels, 5 PAT layers.
TINY = dict(embed_dim=16, depths=[1, 1, 2, 1])
CHANNELS = dict(t0=[32, 64, 128, 256], t1=[48, 96, 192, 384])


def set_gates(layer, zeros=None, values=None, magnitude=.5):
    """Ordered gates with ``zeros`` leading zeros, or explicit ``values``."""
    if values is None:
        values = [-magnitude] * zeros + [magnitude] * (layer.num_gates - zeros)
    with torch.no_grad():
        layer.gate.copy_(torch.tensor(values, dtype=torch.float32))


def fake_runner(model, epoch=0):
    """The parts of a Runner that DPConvHook uses."""
    return types.SimpleNamespace(
        model=model, epoch=epoch, iter=0,
        logger=MMLogger.get_instance('test_dpconv_integration'),
        message_hub=MessageHub.get_instance('test_dpconv_integration'))


def load_tool(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def classifier_cfg(dpconv, num_classes=4):
    return dict(
        type='ImageClassifier',
        backbone=dict(type='mmpartial.PartialNet', arch=TINY, dpconv=dpconv),
        neck=None,
        head=dict(type='mmpartial.PartialNetClsHead', num_classes=num_classes,
                  in_channels=8 * TINY['embed_dim'], hidden_channels=64,
                  loss=dict(type='CrossEntropyLoss')))


def build_classifier(dpconv):
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    return MODELS.build(classifier_cfg(dpconv))


def cls_batch(num=2, size=64, num_classes=4):
    from mmpretrain.structures import DataSample
    return [dict(inputs=torch.randint(0, 256, (3, size, size),
                                      dtype=torch.uint8),
                 data_samples=DataSample().set_gt_label(i % num_classes))
            for i in range(num)]


# --------------------------------------------------------------- backbone

@pytest.mark.parametrize('arch', ['t0', 't1'])
def test_backbone_with_initial_gates_is_the_plain_one(arch):
    plain = PartialNet(arch, out_indices=(0, 1, 2, 3)).eval()
    model = PartialNet(arch, out_indices=(0, 1, 2, 3), dpconv=dict()).eval()

    # The plain network keeps its layout: no DPConv anywhere, the 3x3
    # convolution of C // 4 channels under the same key.
    plain_state = plain.state_dict()
    assert not any('dpconv' in key for key in plain_state)
    layers = named_dpconvs(model)
    depths = PartialNet.arch_zoo[arch]['depths']
    assert len(layers) == sum(depths)
    assert [layer.channels for _, layer in layers] == [
        c for c, d in zip(CHANNELS[arch], depths) for _ in range(d)]
    for name, layer in layers:
        prefix = name[:-len('dpconv')]
        c = layer.channels
        conv_shape = plain_state[prefix + 'conv.weight'].shape
        assert conv_shape == (c // 4, c // 4, 3, 3)
        assert layer.split()['conv_channels'] == c // 4  # 1/n_div, exactly
        assert isinstance(model.get_submodule(prefix + 'conv'),
                          torch.nn.Identity)

    # A plain state dict loads strictly: each 3x3 kernel becomes the
    # top-left block of the DPConv weight, the gates keep their values.
    gates = {name: layer.gate.clone() for name, layer in layers}
    model.load_state_dict(plain_state, strict=True)
    for name, layer in layers:
        prefix = name[:-len('dpconv')]
        c = layer.channels // 4
        assert torch.equal(layer.weight[:c, :c],
                           plain_state[prefix + 'conv.weight'])
        assert torch.equal(layer.gate, gates[name])

    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for out, ref in zip(model(x), plain(x)):
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    assert model.dpconv_cfg == dict(budget=2., theta=.5,
                                    complexity_weight=.01,
                                    ordering_weight=1., warmup_epochs=0,
                                    init_gate=1e-8)
    assert plain.dpconv_cfg is None


@pytest.mark.parametrize('dpconv, error, words', [
    (dict(budjet=2), ValueError, ["'budjet'", 'budget', 'theta',
                                  'warmup_epochs', 'init_gate']),
    (dict(budget=1), ValueError, ['budget', '> 1']),
    (dict(budget=float('inf')), ValueError, ['budget', '> 1']),
    (dict(theta=1.), ValueError, ['theta', '[0, 1)']),
    (dict(theta=-.1), ValueError, ['theta', '[0, 1)']),
    (dict(complexity_weight=-1), ValueError, ['complexity_weight', '>= 0']),
    (dict(ordering_weight=-.5), ValueError, ['ordering_weight', '>= 0']),
    (dict(warmup_epochs=-1), ValueError, ['warmup_epochs', 'int >= 0']),
    (dict(warmup_epochs=1.5), TypeError, ['warmup_epochs', 'int >= 0']),
    (dict(init_gate=0.), ValueError, ['init_gate', '(0, 1)']),
    (dict(init_gate=1.), ValueError, ['init_gate', '(0, 1)']),
    (dict(budget='2'), TypeError, ['budget', '> 1']),
    (True, TypeError, ['dpconv', 'dict']),
])
def test_bad_dpconv_options(dpconv, error, words):
    with pytest.raises(error) as info:
        PartialNet(TINY, dpconv=dpconv)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_bad_n_div_and_hook_interval():
    with pytest.raises(ValueError, match='n_div to be a power of two'):
        PartialNet(TINY, n_div=3, dpconv=dict())
    with pytest.raises(ValueError, match='interval must be an int >= 1'):
        DPConvHook(interval=0)


# ----------------------------------------------------------- regularisers

def test_complexity_term_matches_hand_count():
    a, b, c = DPConv(32), DPConv(48), DPConv(48)
    set_gates(a, zeros=2)  # nnz(U) = 32 * 32 / 4 = 256
    set_gates(b, zeros=1)  # 48 * 48 / 2 = 1152
    # 48 = 16 * 3: four exact halvings (16 blocks of 3 channels), then a
    # 4x4 mask of one zero and one one gate, blockdiag(ones(2, 2),
    # ones(2, 2)), cropped to 3x3 (5 nonzeros): 16 * 5 = 80.
    set_gates(c, zeros=5)
    assert c.mask().sum().item() == 80
    r = 256 + 1152 + 80
    full = 32**2 + 48**2 + 48**2

    # Above the budget: w * log(R / T), gradients lower the gates (halving).
    loss = DPConvLoss([a, b, c], budget=2., theta=.5, complexity_weight=.3)
    assert loss.target == full / 4
    assert loss.complexity().item() == r
    terms = loss()
    assert math.isclose(terms['loss_dpconv_complexity'].item(),
                        .3 * math.log(r / (full / 4)), rel_tol=1e-6)
    assert terms['loss_dpconv_ordering'].item() == 0
    terms['loss_dpconv_complexity'].backward()
    assert (a.gate.grad > 0).any() and (b.gate.grad > 0).any()

    # Below theta * T: w * log(theta * T / R), gradients raise the gates.
    for layer in (a, b, c):
        layer.gate.grad = None
    loss = DPConvLoss([a, b, c], budget=1.1, theta=.9, complexity_weight=.3)
    target = full / 1.1**2
    value = loss()['loss_dpconv_complexity']
    assert math.isclose(value.item(), .3 * math.log(.9 * target / r),
                        rel_tol=1e-6)
    value.backward()
    assert (a.gate.grad < 0).any() and (b.gate.grad < 0).any()

    # Inside [theta * T, T]: zero, with a zero gradient; theta = 0 has no
    # lower bound.
    for layer in (a, b, c):
        layer.gate.grad = None
    for kwargs in (dict(budget=1.9, theta=.5), dict(budget=1.1, theta=0.)):
        value = DPConvLoss([a, b, c], **kwargs)()['loss_dpconv_complexity']
        assert value.item() == 0
        value.backward()
        assert all(layer.gate.grad.abs().sum() == 0 for layer in (a, b, c))

    # Ordering: weight * sum of |g| from the first offending gate on.
    d = DPConv(16)
    set_gates(d, values=[.3, -.2, .1, -.4])
    terms = DPConvLoss([a, d], ordering_weight=2.)()
    assert math.isclose(terms['loss_dpconv_ordering'].item(), 2 * .7,
                        rel_tol=1e-6)


# ------------------------------------------------------------------- hook

def test_hook_adds_losses_to_a_classifier():
    model = build_classifier(dict(complexity_weight=.5))
    with pytest.raises(RuntimeError, match='no DPConv layers'):
        DPConvHook().before_train(fake_runner(build_classifier(None)))
    hook = DPConvHook()
    runner = fake_runner(model)
    hook.before_train(runner)
    assert hook.loss.complexity_weight == .5  # read from the backbone

    model.train()
    data = model.data_preprocessor(dict(
        inputs=[d['inputs'] for d in cls_batch()],
        data_samples=[d['data_samples'] for d in cls_batch()]), True)
    losses = model(**data, mode='loss')
    assert {'loss', 'loss_dpconv_complexity',
            'loss_dpconv_ordering'} <= set(losses)
    total, log_vars = model.parse_losses(losses)
    assert 'loss_dpconv_complexity' in log_vars
    torch.testing.assert_close(
        total, losses['loss'] + losses['loss_dpconv_complexity'] +
        losses['loss_dpconv_ordering'])
    total.backward()
    assert all(layer.gate.grad is not None for _, layer in
               named_dpconvs(model))
    # Other modes are left alone.
    assert torch.is_tensor(model(data['inputs'], mode='tensor')[0])
    # The ratios reach the message hub.
    hook.before_train_iter(runner, 0)
    hook.after_train_iter(runner, 0)
    assert runner.message_hub.get_scalar(
        'train/dpconv_mean_ratio').current() == .25
    assert runner.message_hub.get_scalar(
        'train/dpconv_budget_usage').current() == 1.
    hook.after_train(runner)
    assert 'loss_dpconv_complexity' not in model(**data, mode='loss')


def test_hook_adds_losses_to_a_detector():
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    init_default_scope('mmdet')
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/mask-rcnn_partialnet-t0-dpconv_coco.py'))
    assert cfg.custom_hooks == [dict(type='mmpartial.DPConvHook')]
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == {
        'dpconv.gate': dict(decay_mult=0.)}
    model = MODELS.build(cfg.model)
    assert len(named_dpconvs(model)) == 13
    DPConvHook().before_train(fake_runner(model))

    size = 64
    samples = []
    for i in range(2):
        sample = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size),
            pad_shape=(size, size), batch_input_shape=(size, size),
            scale_factor=(1., 1.)))
        masks = np.zeros((1, size, size), np.uint8)
        masks[0, 8:40, 10:50] = 1
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[10., 8., 50., 40.]]),
            labels=torch.tensor([i]),
            masks=BitmapMasks(masks, size, size))
        samples.append(sample)
    model.train()
    losses = model(torch.randn(2, 3, size, size), samples, mode='loss')
    assert {'loss_cls', 'loss_mask', 'loss_dpconv_complexity',
            'loss_dpconv_ordering'} <= set(losses)
    total, log_vars = model.parse_losses(losses)
    assert {'loss_dpconv_complexity', 'loss_dpconv_ordering'} <= set(log_vars)
    total.backward()
    gate = named_dpconvs(model)[0][1].gate
    assert gate.grad is not None


def test_in1k_config_builds():
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/partialnet-t0-dpconv_in1k.py'))
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert keys['dpconv.gate'] == dict(decay_mult=0.)
    assert '.bias_table' in keys  # merged with the base config's keys
    assert [h['type'] for h in cfg.custom_hooks] == [
        'mmpartial.TrainResolutionHook', 'mmpartial.DPConvHook']
    model = MODELS.build(cfg.model)
    assert model.backbone.dpconv_cfg['budget'] == 2.
    assert len(named_dpconvs(model)) == 13
    # The optimiser key catches the DPConv gates and nothing else.
    names = [n for n, _ in model.named_parameters() if 'dpconv.gate' in n]
    assert len(names) == 13 and all(n.endswith('dpconv.gate') for n in names)


# ------------------------------------------------ training with a Runner

class GateRecorder(Hook):
    """Records the gates and their frozen flag at the end of every epoch."""
    priority = 'LOWEST'

    def __init__(self):
        self.epochs = []

    def after_train_epoch(self, runner):
        layers = named_dpconvs(runner.model)
        self.epochs.append(dict(
            gates=[layer.gate.detach().clone() for _, layer in layers],
            frozen=[layer.gates_frozen for _, layer in layers]))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Two epochs of a tiny classifier on random data, the first one a
    warm-up, under a tight budget (8: a ratio of 1/64 on average) with a big
    complexity weight and no lower bound."""
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import Runner
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    work_dir = tmp_path_factory.mktemp('dpconv_train')
    dpconv = dict(budget=8, theta=0., complexity_weight=1.,
                  warmup_epochs=1)
    init_default_scope('mmpretrain')
    model = build_classifier(dpconv)
    initial = [layer.gate.detach().clone()
               for _, layer in named_dpconvs(model)]
    recorder = GateRecorder()
    runner = Runner(
        model=model,
        work_dir=str(work_dir),
        experiment_name='dpconv_toy',
        train_dataloader=DataLoader(cls_batch(4), batch_size=2,
                                    collate_fn=pseudo_collate),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=.01, momentum=.9,
                           weight_decay=1e-4),
            paramwise_cfg=dict(
                custom_keys={'dpconv.gate': dict(decay_mult=0.)})),
        custom_hooks=[dict(type='mmpartial.DPConvHook', interval=1),
                      recorder],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2)),
        default_scope='mmpretrain',
        log_level='WARNING')
    runner.train()
    # A config file of the same model, for the report tool.
    config = work_dir / 'tiny_dpconv_cls.py'
    Config(dict(default_scope='mmpretrain',
                custom_imports=dict(imports=['mmpartial']),
                model=classifier_cfg(dpconv))).dump(str(config))
    # The model's weights alone, as the tool reads them (see
    # test_dpconv_report_of_a_runner_checkpoint for the Runner's own file).
    checkpoint = work_dir / 'weights.pth'
    torch.save(dict(meta=dict(epoch=2), state_dict=model.state_dict()),
               str(checkpoint))
    return dict(runner=runner, model=model, initial=initial,
                recorder=recorder, config=str(config),
                checkpoint=str(checkpoint),
                runner_checkpoint=str(work_dir / 'epoch_2.pth'))


def test_training_under_a_tight_budget_changes_ratios(trained):
    model, runner = trained['model'], trained['runner']
    ratios = [layer['ratio'] for layer in dpconv_summary(model)['layers']]
    assert len(ratios) == 5
    assert any(ratio != .25 for ratio in ratios), ratios
    assert sum(ratios) / 5 < .25  # the budget pulls the ratios down
    scalars = runner.message_hub.log_scalars
    for key in ('train/loss_dpconv_complexity', 'train/loss_dpconv_ordering',
                'train/dpconv_mean_ratio', 'train/dpconv_budget_usage'):
        assert key in scalars, key
    assert scalars['train/loss_dpconv_complexity'].data[0][0] > 0
    # The gates are trained without weight decay, the rest with it.
    for group in runner.optim_wrapper.optimizer.param_groups:
        is_gate = any(p is layer.gate for p in group['params']
                      for _, layer in named_dpconvs(model))
        assert group['weight_decay'] == (0. if is_gate else 1e-4)


def test_warmup_keeps_the_gates_fixed(trained):
    epochs = trained['recorder'].epochs
    assert len(epochs) == 2
    # Epoch 0 is the warm-up: frozen gates, unchanged although the
    # complexity term was far above zero.
    assert all(epochs[0]['frozen'])
    for gate, initial in zip(epochs[0]['gates'], trained['initial']):
        assert torch.equal(gate, initial)
    # Epoch 1: the gates learn.
    assert not any(epochs[1]['frozen'])
    assert any(not torch.equal(gate, initial) for gate, initial in
               zip(epochs[1]['gates'], trained['initial']))


def test_warmup_follows_the_epoch():
    model = PartialNet(TINY, dpconv=dict(warmup_epochs=2))
    hook = DPConvHook()
    runner = fake_runner(model)
    hook.before_train(runner)
    layers = [layer for _, layer in named_dpconvs(model)]
    for epoch, frozen in [(0, True), (1, True), (2, False), (5, False)]:
        runner.epoch = epoch
        hook.before_train_iter(runner, 0)
        assert all(layer.gates_frozen == frozen for layer in layers), epoch


# ----------------------------------------------------------------- deploy

class ConvMacCounter:
    """Multiply-adds of every F.conv2d call (nn.Conv2d included), or of
    those with a ``kernel_size`` x ``kernel_size`` kernel only."""

    def __init__(self, monkeypatch, kernel_size=None):
        self.macs = 0
        original = F.conv2d

        def counted(x, weight, *args, **kwargs):
            out = original(x, weight, *args, **kwargs)
            if kernel_size is None or \
                    tuple(weight.shape[-2:]) == (kernel_size, kernel_size):
                self.macs += weight[0].numel() * out[0].numel()
            return out

        monkeypatch.setattr(torch.nn.functional, 'conv2d', counted)


def test_deploy_with_learned_gates(monkeypatch):
    model = PartialNet('t1', out_indices=(0, 1, 2, 3), dpconv=dict()).eval()
    layers = [layer for _, layer in named_dpconvs(model)]
    torch.manual_seed(1)
    for i, layer in enumerate(layers):
        # Zero gates 0..K, past the exact halvings of 48 * 2**i = 2**(4+i)*3
        # too; layer 5 out of order (a strided set of channels).
        if i == 5:
            set_gates(layer, values=[.5, -.5] * (layer.num_gates // 2) +
                      [.5] * (layer.num_gates % 2))
        else:
            set_gates(layer, zeros=i % (layer.num_gates + 1))
        with torch.no_grad():  # weights big enough to matter
            layer.weight.normal_(0, .1)
    splits = [layer.split() for layer in layers]
    assert len({s['conv_channels'] / s['channels'] for s in splits}) > 3
    assert not splits[5]['ordered']

    size = 64
    x = torch.randn(2, 3, size, size)
    # The 3x3 convolutions are the DPConvs (the PAT layers' own are
    # identities); the deploy form runs the 1x1 ones as linear layers.
    counter = ConvMacCounter(monkeypatch, kernel_size=3)
    with torch.no_grad():
        before = model(x)
    macs_before, counter.macs = counter.macs, 0
    model.switch_to_deploy()
    model.switch_to_deploy()  # twice is harmless
    with torch.no_grad():
        after = model(x)
    assert model.deploy and all(layer.deploy for layer in layers)
    for out, ref in zip(after, before):
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # Each DPConv now convolves n instead of C channels, 9 * (C**2 - n**2)
    # multiply-adds fewer per position (the counter counts one sample).
    depths = PartialNet.arch_zoo['t1']['depths']
    sides = [size // 4 // 2**i for i in range(4) for _ in range(depths[i])]
    saved = sum(9 * (s['channels']**2 - s['conv_channels']**2) * side**2
                for s, side in zip(splits, sides))
    assert saved > 0 and macs_before - counter.macs == saved
    assert [layer.split() for layer in layers] == splits


def test_deploy_of_the_trained_model(trained):
    backbone = trained['model'].backbone
    # Another copy, so the other tests keep a trainable model.
    model = PartialNet(TINY, dpconv=dict()).eval()
    model.load_state_dict(backbone.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)[0]
        model.switch_to_deploy()
        torch.testing.assert_close(model(x)[0], before, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------- report

def test_dpconv_report(trained, tmp_path, capsys):
    tool = load_tool('dpconv_report')
    out = tmp_path / 'report'
    tool.main([trained['config'], trained['checkpoint'], '--out', str(out)])
    assert 'DPConv layers' in capsys.readouterr().out
    with open(out / 'dpconv_ratios.json') as f:
        report = json.load(f)
    expected = dpconv_summary(trained['model'])
    assert [(layer['name'], layer['channels'], layer['conv_channels'],
             layer['ratio']) for layer in report['layers']] == [
        (layer['name'], layer['channels'], layer['conv_channels'],
         layer['ratio']) for layer in expected['layers']]
    assert report['layers'][0]['name'] == \
        'backbone.stages.0.0.token_mixer.dpconv'
    assert report['totals']['num_layers'] == 5
    assert report['totals']['channels'] == 16 + 32 + 2 * 64 + 128
    png = out / 'dpconv_ratios.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    import matplotlib.image
    assert matplotlib.image.imread(str(png)).ndim == 3


def test_dpconv_report_of_a_runner_checkpoint(trained, tmp_path):
    tool = load_tool('dpconv_report')
    summary = tool.report(trained['config'], trained['runner_checkpoint'],
                          str(tmp_path))
    assert summary['layers'] == dpconv_summary(trained['model'])['layers']


def test_dpconv_report_errors(trained, tmp_path):
    tool = load_tool('dpconv_report')
    config, checkpoint = trained['config'], trained['checkpoint']
    with pytest.raises(FileNotFoundError, match='config file'):
        tool.report(str(tmp_path / 'nope.py'), checkpoint, str(tmp_path))
    with pytest.raises(FileNotFoundError, match='checkpoint'):
        tool.report(config, str(tmp_path / 'nope.pth'), str(tmp_path))
    # A config without DPConv.
    plain = tmp_path / 'plain.py'
    cfg = Config.fromfile(config)
    cfg.model.backbone.dpconv = None
    cfg.dump(str(plain))
    with pytest.raises(ValueError, match='no DPConv layers'):
        tool.report(str(plain), checkpoint, str(tmp_path))
    # A checkpoint without gates (trained without DPConv).
    no_gates = tmp_path / 'no_gates.pth'
    state = {k: v for k, v in trained['model'].state_dict().items()
             if not k.endswith('.gate')}
    torch.save(dict(state_dict=state), str(no_gates))
    with pytest.raises(ValueError, match='no DPConv gates'):
        tool.report(config, str(no_gates), str(tmp_path))
    # The command line turns these into a one-line error.
    with pytest.raises(SystemExit, match='dpconv_report: error: checkpoint'):
        tool.main([config, str(tmp_path / 'nope.pth'), '--out',
                   str(tmp_path)])
