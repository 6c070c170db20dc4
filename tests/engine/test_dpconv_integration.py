"""DPConv in the network and in training: the backbone options (the learned
PAT split, the reference's auto_div network, the ablation switches), the
complexity term and the hook that applies it to any model's losses,
warm-up, deploy, the report and the configs' recipes. The layers themselves
are tested in test_dpconv.py."""
import json
import math
import os.path as osp
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import init_default_scope
from torch.nn.modules.batchnorm import _BatchNorm

from deploy_helpers import randomize_norms
import mmpartial  # noqa: F401  (registers models and hooks)
from mmpartial.apis.counting import model_macs
from mmpartial.apis.dpconv_report import compare_runs, dpconv_report
from mmpartial.apis.results import ResultsError
from mmpartial.engine import DPConvHook
from mmpartial.models import DPConv, PartialNet
from mmpartial.models.layers import (PartialAttnBlock, PartialBlock,
                                     PATChannel, PATSelfAttention,
                                     PATSpatial, RelPosSelfAttention,
                                     StylePoolGate)
from mmpartial.models.losses import DPConvLoss
from mmpartial.models.utils import dpconv_summary, named_dpconvs
from mmpartial.models.utils.dpconv_summary import named_dpconv_costs
from mmpartial.utils.checkpoint import check_state_dict_fits

from conftest import REPO

# A small PartialNet for training tests: 16/32/64/128 channels, 5 PAT layers.
TINY = dict(embed_dim=16, depths=[1, 1, 2, 1])
CHANNELS = dict(t0=[32, 64, 128, 256], t1=[48, 96, 192, 384])
CONFIGS = osp.join(REPO, 'configs')


def set_gates(layer, zeros=None, values=None, magnitude=.5):
    """Ordered free gates with ``zeros`` leading zeros, or ``values``."""
    if values is None:
        values = [-magnitude] * zeros + [magnitude] * (layer.num_gates - zeros)
    with torch.no_grad():
        layer.gate.copy_(torch.tensor(values[:layer.num_gates],
                                      dtype=torch.float32))


def fake_runner(model, epoch=0):
    """The parts of a Runner that DPConvHook uses."""
    return types.SimpleNamespace(
        model=model, epoch=epoch, iter=0,
        logger=MMLogger.get_instance('test_dpconv_integration'),
        message_hub=MessageHub.get_instance('test_dpconv_integration'))


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


def count_macs(model, x, ops=('conv', 'linear', 'matmul', 'addmm', 'bmm')):
    """mmengine.analysis's (fvcore's) multiply-adds (of ``ops``; None: all
    it counts)."""
    from mmengine.analysis import FlopAnalyzer
    flops = FlopAnalyzer(model, x)
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    if ops is None:
        return flops.total()
    by_op = flops.by_operator()
    return sum(by_op.get(op, 0) for op in ops)


# --------------------------------------------------------------- backbone

@pytest.mark.parametrize('arch', ['t0', 't1'])
def test_backbone_with_initial_gates_is_the_plain_one(arch):
    plain = randomize_norms(PartialNet(arch, out_indices=(0, 1, 2, 3)))
    plain.eval()
    model = PartialNet(arch, out_indices=(0, 1, 2, 3), dpconv=dict()).eval()

    # The plain network keeps its layout: no DPConv anywhere.
    plain_state = plain.state_dict()
    assert not any('dpconv' in key or 'masked' in key for key in plain_state)
    layers = named_dpconvs(model)
    depths = PartialNet.arch_zoo[arch]['depths']
    assert len(layers) == sum(depths)
    assert [layer.channels for _, layer in layers] == [
        c for c, d in zip(CHANNELS[arch], depths) for _ in range(d)]
    for name, layer in layers:
        assert layer.split()['conv_channels'] == layer.channels // 4
        mixer = model.get_submodule(name[:-len('.dpconv')])
        assert isinstance(mixer, (PATChannel, PATSelfAttention))
        assert mixer.learns_split and mixer.dpconv is layer

    # A plain checkpoint passes the checkpoint checks (no tensor of another
    # shape under the same name) and loads strictly: each plain tensor goes
    # to its place in the full-width one, the gates keep their values.
    check_state_dict_fits(plain_state, model, 'plain.pth')
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
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    assert model.dpconv_cfg == dict(
        mode='split', loss_form='multiplicative', budget=2., theta=0.,
        alpha=.01, complexity_weight=.01, ordering_weight=1.,
        warmup_epochs=0, init_gate=1e-8, init_split=None, train_form=None)
    assert plain.dpconv_cfg is None


@pytest.mark.parametrize('dpconv, error, words', [
    (dict(budjet=2), ValueError, ["'budjet'", 'budget', 'theta',
                                  'warmup_epochs', 'init_gate', 'mode']),
    (dict(budget=1), ValueError, ['budget', '> 1']),
    (dict(budget=float('inf')), ValueError, ['budget', '> 1']),
    (dict(theta=1.), ValueError, ['theta', '[0, 1)']),
    (dict(theta=-.1), ValueError, ['theta', '[0, 1)']),
    (dict(alpha=0.), ValueError, ['alpha', '> 0']),
    (dict(complexity_weight=-1), ValueError, ['complexity_weight', '>= 0']),
    (dict(ordering_weight=-.5), ValueError, ['ordering_weight', '>= 0']),
    (dict(warmup_epochs=-1), ValueError, ['warmup_epochs', 'int >= 0']),
    (dict(warmup_epochs=1.5), TypeError, ['warmup_epochs', 'int >= 0']),
    (dict(init_gate=0.), ValueError, ['init_gate', '(0, 1)']),
    (dict(init_gate=1.), ValueError, ['init_gate', '(0, 1)']),
    (dict(budget='2'), TypeError, ['budget', '> 1']),
    (dict(mode='front'), ValueError, ['mode', "'split'", "'auto_div'"]),
    (dict(loss_form='log'), ValueError, ['loss_form', "'additive'"]),
    (dict(init_split=.3), ValueError, ['init_split', '2**-z']),
    (dict(init_split='half'), TypeError, ['init_split']),
    (dict(train_form='group'), ValueError, ['train_form', 'auto_div']),
    (dict(mode='auto_div', train_form='dense'), ValueError, ['train_form']),
    (True, TypeError, ['dpconv', 'dict']),
])
def test_bad_dpconv_options(dpconv, error, words):
    with pytest.raises(error) as info:
        PartialNet(TINY, dpconv=dpconv)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_bad_backbone_switches_and_hook_interval():
    with pytest.raises(ValueError, match='n_div to be a power of two'):
        PartialNet(TINY, n_div=3, dpconv=dict())
    for name, value in (('use_pat_sp', 'yes'), ('use_pat_sf', None),
                        ('use_channel_attn', 0)):
        with pytest.raises(TypeError, match=f'{name} must be a bool'):
            PartialNet(TINY, **{name: value})
    with pytest.raises(ValueError, match='interval must be an int >= 1'):
        DPConvHook(interval=0)


@pytest.mark.slow
def test_ratio_one_half_is_the_n_div_2_network():
    # The measurement: a T0 with every split at 1/2, deployed, cost
    # 1.03x the MACs of PartialNet(n_div=2) when DPConv ran in front of the
    # PAT layers. Now it is that network: same MACs, same outputs.
    torch.manual_seed(0)
    model = PartialNet('t0', dpconv=dict(init_split=1 / 2))
    model.init_weights()
    randomize_norms(model).eval()
    assert all(layer.split()['ratio'] == .5
               for _, layer in named_dpconvs(model))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ref = model(x)[0]
        model.switch_to_deploy()
        torch.testing.assert_close(model(x)[0], ref, atol=1e-4, rtol=1e-4)
    plain = PartialNet('t0', n_div=2, deploy=True).eval()
    state = {key: value for key, value in model.state_dict().items()
             if '.dpconv.' not in key}
    plain.load_state_dict(state, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(plain(x)[0], ref, atol=1e-4, rtol=1e-4)
    assert count_macs(model, x, ops=None) == count_macs(plain, x, ops=None)


def test_auto_div_network_structure():
    """The reference's auto_div network: every token mixer (stages 1-4) is
    one DPConv over all channels, no attention anywhere; the MLPs stay."""
    torch.manual_seed(1)
    model = PartialNet(TINY, dpconv=dict(mode='auto_div'))
    mixers = [block.token_mixer for stage in model.stages for block in stage]
    assert len(mixers) == sum(TINY['depths'])
    assert all(type(mixer) is DPConv for mixer in mixers)
    assert [m.channels for m in mixers] == [16, 32, 64, 64, 128]
    assert not any(isinstance(m, (PATChannel, PATSelfAttention, StylePoolGate,
                                  RelPosSelfAttention, nn.LayerNorm))
                   for m in model.modules())
    assert type(model.stages[3][0]) is PartialAttnBlock
    assert all(type(block) is PartialBlock for block in model.stages[0])
    for mixer in mixers:
        # Every gate free (K = log2 C for these widths), random signs.
        assert mixer.num_gates == mixer.total_gates == \
            int(math.log2(mixer.channels))
        assert mixer.train_form == 'group' and not mixer.attached
        assert mixer.gate.abs().max().item() == pytest.approx(1e-8)
    signs = torch.cat([m.gate.sign() for m in mixers])
    assert (signs > 0).any() and (signs < 0).any()
    # The complexity counts the DPConvs themselves: nnz(U).
    assert [unit for _, unit in named_dpconv_costs(model)] == mixers

    x = torch.randn(2, 3, 64, 64)
    model.train()
    with torch.no_grad():
        model(x)  # the group form trains
    model.eval()
    with torch.no_grad():
        ref = model(x)[0]
        model.switch_to_deploy()
        out = model(x)[0]
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    fresh = PartialNet(TINY, dpconv=dict(mode='auto_div'), deploy=True)
    fresh.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x)[0], out)


# ----------------------------------------------------------- regularisers

def test_multiplicative_loss_by_hand():
    a, b = DPConv(32), DPConv(16)
    set_gates(a, zeros=1)  # nnz(U) = 32 * 32 / 2 = 512
    set_gates(b, zeros=2)  # 16 * 16 / 4 = 64
    loss = DPConvLoss([a, b])  # the defaults: budget 2, theta 0, |a| .01
    r, t = 512 + 64, (32 * 32 + 16 * 16) / 4  # 576 > 320
    assert loss.complexity().item() == r and loss.target == t
    factor = (t / r)**-.01  # R > T: alpha = -0.01
    assert factor == pytest.approx(1.8**.01)
    losses = dict(loss_cls=torch.tensor(2.),
                  loss_bbox=[torch.tensor(1.), torch.tensor(.5)],
                  acc_top1=torch.tensor(.7),
                  loss_dpconv_ordering=torch.tensor(.3))
    got = loss.scale_losses(losses)
    assert got.item() == pytest.approx(factor, rel=1e-6)
    assert losses['loss_cls'].item() == pytest.approx(2. * factor, rel=1e-6)
    assert [v.item() for v in losses['loss_bbox']] == pytest.approx(
        [factor, .5 * factor], rel=1e-6)
    assert losses['acc_top1'].item() == pytest.approx(.7)  # not a loss
    assert losses['loss_dpconv_ordering'].item() == pytest.approx(.3)
    # Its gradient pushes R down: d(2 * factor) / dR = 2 * .01 * factor / R
    # > 0, and a gate that is 1 adds nonzeros.
    losses['loss_cls'].backward()
    assert (a.gate.grad[1:] > 0).all() and (b.gate.grad[2:] > 0).all()
    assert loss().keys() == {'loss_dpconv_ordering'}

    # Below theta * T: alpha = +0.01, the factor pushes R up.
    low = DPConvLoss([a, b], budget=1.1, theta=.9)
    t_low = (32 * 32 + 16 * 16) / 1.1**2
    assert r < .9 * t_low
    assert low.factor().item() == pytest.approx((t_low / r)**.01, rel=1e-6)
    # Inside [theta * T, T]: 1, with a zero gradient.
    for gate in (a.gate, b.gate):
        gate.grad = None
    inside = DPConvLoss([a, b], budget=1.4, theta=.5).factor()
    assert inside.item() == 1.
    inside.backward()
    assert a.gate.grad.abs().sum() == 0 and b.gate.grad.abs().sum() == 0
    with pytest.raises(ValueError, match='form'):
        DPConvLoss([a], form='log')


def test_additive_term_matches_hand_count():
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
    loss = DPConvLoss([a, b, c], budget=2., theta=.5, complexity_weight=.3,
                      form='additive')
    assert loss.target == full / 4
    terms = loss()
    assert math.isclose(terms['loss_dpconv_complexity'].item(),
                        .3 * math.log(r / (full / 4)), rel_tol=1e-6)
    assert terms['loss_dpconv_ordering'].item() == 0
    terms['loss_dpconv_complexity'].backward()
    assert (a.gate.grad > 0).any() and (b.gate.grad > 0).any()

    # Below theta * T: w * log(theta * T / R), gradients raise the gates.
    for layer in (a, b, c):
        layer.gate.grad = None
    loss = DPConvLoss([a, b, c], budget=1.1, theta=.9, complexity_weight=.3,
                      form='additive')
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
        value = DPConvLoss([a, b, c], form='additive',
                           **kwargs)()['loss_dpconv_complexity']
        assert value.item() == 0
        value.backward()
        assert all(layer.gate.grad.abs().sum() == 0 for layer in (a, b, c))

    # Ordering: weight * sum of |g| from the first offending gate on.
    d = DPConv(16)
    set_gates(d, values=[.3, -.2, .1, -.4])
    terms = DPConvLoss([a, d], ordering_weight=2.)()
    assert math.isclose(terms['loss_dpconv_ordering'].item(), 2 * .7,
                        rel_tol=1e-6)


def test_budget_is_in_macs_of_both_branches():
    model = PartialNet(TINY, dpconv=dict())
    units = [unit for _, unit in named_dpconv_costs(model)]
    assert [type(u) for u in units] == [PATChannel] * 4 + [PATSelfAttention]
    loss = DPConvLoss(units)
    # At the initial 1/4 every layer costs its budget share: R = T, and
    # R is the sum of the layers' conv + attention MACs (224x224 maps).
    sides = [56, 28, 14, 14, 7]
    expected = 0
    for unit, side in zip(units, sides):
        c, n = unit.channels, unit.channels // 4
        d, tokens = c - n, side * side
        attn = 2 * d * d if isinstance(unit, PATChannel) else \
            4 * tokens * d * d + 2 * tokens * tokens * d
        expected += 9 * tokens * n * n + attn
    assert loss.complexity().item() == pytest.approx(expected)
    assert loss.target == pytest.approx(expected)
    assert loss.factor().item() == 1.
    # A forward at 64x64 makes that the size counted.
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert units[0]._last_hw == (16, 16)
    assert loss.complexity().item() < expected


# ------------------------------------------------------------------- hook

def test_hook_scales_a_classifier_losses():
    model = build_classifier(dict())
    with pytest.raises(RuntimeError, match='no DPConv layers'):
        DPConvHook().before_train(fake_runner(build_classifier(None)))
    hook = DPConvHook()
    runner = fake_runner(model)
    hook.before_train(runner)
    assert hook.loss.form == 'multiplicative' and hook.loss.alpha == .01
    # Above the budget: the first layer convolves half its channels.
    first = named_dpconvs(model)[0][1]
    set_gates(first, zeros=0)

    model.train()
    batch = cls_batch()
    data = model.data_preprocessor(dict(
        inputs=[d['inputs'] for d in batch],
        data_samples=[d['data_samples'] for d in batch]), True)
    hook.remove()
    torch.manual_seed(3)
    raw = model(**data, mode='loss')['loss']
    hook._handle = model.register_forward_hook(hook._add_losses,
                                               with_kwargs=True)
    torch.manual_seed(3)
    losses = model(**data, mode='loss')
    factor = hook.loss.factor()
    assert factor.item() > 1
    assert set(losses) == {'loss', 'loss_dpconv_ordering'}
    torch.testing.assert_close(losses['loss'], raw * factor)
    total, log_vars = model.parse_losses(losses)
    torch.testing.assert_close(total, losses['loss'] +
                               losses['loss_dpconv_ordering'])
    total.backward()
    assert all(layer.gate.grad is not None and
               (layer.gate.grad != 0).any()
               for _, layer in named_dpconvs(model))
    # Other modes are left alone.
    assert torch.is_tensor(model(data['inputs'], mode='tensor')[0])
    # The ratios and the factor reach the message hub.
    hook.before_train_iter(runner, 0)
    hook.after_train_iter(runner, 0)
    hub = runner.message_hub
    assert hub.get_scalar('train/dpconv_mean_ratio').current() == \
        pytest.approx((.5 + 4 * .25) / 5)
    assert hub.get_scalar('train/dpconv_budget_usage').current() > 1
    assert hub.get_scalar('train/dpconv_loss_factor').current() == \
        pytest.approx(factor.item())
    hook.after_train(runner)
    assert set(model(**data, mode='loss')) == {'loss'}


def test_hook_additive_form():
    model = build_classifier(dict(loss_form='additive',
                                  complexity_weight=.5))
    hook = DPConvHook()
    hook.before_train(fake_runner(model))
    assert hook.loss.form == 'additive' and hook.loss.complexity_weight == .5
    model.train()
    batch = cls_batch()
    data = model.data_preprocessor(dict(
        inputs=[d['inputs'] for d in batch],
        data_samples=[d['data_samples'] for d in batch]), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss', 'loss_dpconv_complexity',
                           'loss_dpconv_ordering'}
    total, _ = model.parse_losses(losses)
    torch.testing.assert_close(total, sum(losses.values()))


def test_hook_on_the_auto_div_network():
    model = build_classifier(dict(mode='auto_div'))
    hook = DPConvHook()
    hook.before_train(fake_runner(model))
    mixers = [block.token_mixer for stage in model.backbone.stages
              for block in stage]
    assert hook.loss.layers == mixers  # nnz(U) of the DPConvs themselves
    assert hook.loss.target == sum(m.channels**2 / 4 for m in mixers)
    model.train()
    batch = cls_batch()
    data = model.data_preprocessor(dict(
        inputs=[d['inputs'] for d in batch],
        data_samples=[d['data_samples'] for d in batch]), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss', 'loss_dpconv_ordering'}
    total, _ = model.parse_losses(losses)
    total.backward()
    assert all(m.gate.grad is not None for m in mixers)


@pytest.mark.slow
def test_hook_scales_a_detector_losses():
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    init_default_scope('mmdet')
    cfg = Config.fromfile(
        osp.join(CONFIGS, 'mask-rcnn_partialnet-t0-dpconv_coco.py'))
    assert cfg.custom_hooks == [dict(type='mmpartial.DPConvHook')]
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == {
        'dpconv.gate': dict(decay_mult=0.)}
    model = MODELS.build(cfg.model)
    layers = named_dpconvs(model)
    assert len(layers) == 13
    set_gates(layers[0][1], zeros=0)  # above the budget: a factor > 1

    # What the detector returns, before the DPConv hook scales it.
    raw = {}

    def capture(module, args, kwargs, output):
        if isinstance(output, dict):
            raw.update({k: list(v) if isinstance(v, list) else v
                        for k, v in output.items()})

    model.register_forward_hook(capture, with_kwargs=True)
    hook = DPConvHook()
    hook.before_train(fake_runner(model))

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
    factor = hook.loss.factor().item()
    assert factor > 1
    assert {'loss_cls', 'loss_mask', 'loss_dpconv_ordering'} <= set(losses)
    scaled = 0
    for key, value in raw.items():
        if 'loss' not in key:
            assert losses[key] is value  # e.g. acc: left alone
            continue
        values = value if isinstance(value, list) else [value]
        got = losses[key] if isinstance(value, list) else [losses[key]]
        for v, g in zip(values, got):
            torch.testing.assert_close(g, v * factor)
        scaled += 1
    assert scaled >= 5 and any(isinstance(v, list) for v in raw.values())
    total, log_vars = model.parse_losses(losses)
    assert 'loss_dpconv_ordering' in log_vars
    total.backward()
    assert layers[0][1].gate.grad is not None


# ---------------------------------------------------------------- configs

def build_optimizer(cfg, model):
    from mmengine.optim import build_optim_wrapper
    optim = cfg.optim_wrapper.to_dict()
    optim['type'] = 'OptimWrapper'  # AMP needs a GPU; the same groups
    optim.pop('loss_scale', None)
    return build_optim_wrapper(model, optim).optimizer


def decay_of(optimizer, model):
    """{parameter name: its weight decay}."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: group['weight_decay']
            for group in optimizer.param_groups for p in group['params']}


@pytest.mark.slow
def test_in1k_recipes_decay_every_parameter():
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    decay = dict(t0=.005, t1=.01, t2=.02, s=.03, m=.05, l=.05)
    for variant, wd in decay.items():
        cfg = Config.fromfile(
            osp.join(CONFIGS, f'partialnet-{variant}_in1k.py'))
        opt = cfg.optim_wrapper
        assert opt.optimizer.weight_decay == wd
        assert opt.optimizer.lr == (2e-3 if variant in 'ml' else 4e-3)
        assert opt.get('paramwise_cfg') is None
    # On the built model: one decay for all, the norms, biases and the iRPE
    # tables included.
    cfg = Config.fromfile(osp.join(CONFIGS, 'partialnet-t0_in1k.py'))
    model = MODELS.build(cfg.model)
    got = decay_of(build_optimizer(cfg, model), model)
    assert len(got) == len(list(model.parameters()))
    assert set(got.values()) == {.005}
    assert any(name.endswith('bias_table') for name in got)
    # The documented option: the mmpretrain convention.
    cfg.optim_wrapper.paramwise_cfg = cfg.mmpretrain_paramwise_cfg
    got = decay_of(build_optimizer(cfg, model), model)
    for name, value in got.items():
        module = model.get_submodule(name.rsplit('.', 1)[0])
        off = name.endswith(('.bias', 'bias_table')) or isinstance(
            module, (_BatchNorm, nn.LayerNorm))
        assert value == (0. if off else .005), name


@pytest.mark.slow
def test_coco_recipes_lr_and_decay():
    lrs = dict(t0=2e-4, t1=2e-4, t2=2e-4, s=2e-4, m=1e-4, l=1e-4)
    for variant, lr in lrs.items():
        cfg = Config.fromfile(
            osp.join(CONFIGS, f'mask-rcnn_partialnet-{variant}_coco.py'))
        assert cfg.optim_wrapper.optimizer.type == 'AdamW'
        assert cfg.optim_wrapper.optimizer.lr == lr, variant
        assert cfg.optim_wrapper.optimizer.weight_decay == 1e-4


def test_dpconv_configs():
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(CONFIGS, 'partialnet-t0-dpconv_in1k.py'))
    assert cfg.model.backbone.dpconv.mode == 'split'
    assert cfg.model.backbone.dpconv.loss_form == 'multiplicative'
    assert (cfg.model.backbone.dpconv.theta,
            cfg.model.backbone.dpconv.alpha) == (0., .01)
    assert [h['type'] for h in cfg.custom_hooks] == [
        'mmpartial.TrainResolutionHook', 'mmpartial.DPConvHook']
    model = MODELS.build(cfg.model)
    assert len(named_dpconvs(model)) == 13
    # No decay on the gates, the recipe's on everything else.
    got = decay_of(build_optimizer(cfg, model), model)
    for name, value in got.items():
        assert value == (0. if name.endswith('dpconv.gate') else .005), name
    assert sum(name.endswith('dpconv.gate') for name in got) == 13

    # The reference's network: decay on every parameter, the gates too.
    cfg = Config.fromfile(
        osp.join(CONFIGS, 'partialnet-t0-dpconv-auto-div_in1k.py'))
    model = MODELS.build(cfg.model)
    assert all(type(block.token_mixer) is DPConv
               for stage in model.backbone.stages for block in stage)
    assert set(decay_of(build_optimizer(cfg, model), model).values()) == \
        {.005}
    cfg = Config.fromfile(
        osp.join(CONFIGS, 'partialnet-t0-dpconv_toy-imagenet.py'))
    assert cfg.model.backbone.dpconv.mode == 'split'
    assert cfg.custom_hooks[-1].type == 'mmpartial.DPConvHook'


@pytest.mark.parametrize('name, pconv, pat_sp, pat_sf', [
    ('pconv', True, False, False),
    ('pat-ch', False, False, False),
    ('pat-ch-sp', False, True, False),
    ('pat-ch-sp-sf', False, True, True),
])
def test_ablation_configs(name, pconv, pat_sp, pat_sf):
    cfg = Config.fromfile(
        osp.join(CONFIGS, f'partialnet-t2-ablation-{name}_in1k.py'))
    assert cfg.model.backbone.arch == 't2'
    assert cfg.optim_wrapper.optimizer.weight_decay == .02
    args = {k: v for k, v in cfg.model.backbone.items() if k != 'type'}
    backbone = PartialNet(**args)
    modules = list(backbone.modules())
    assert any(isinstance(m, StylePoolGate) for m in modules) != pconv
    assert any(isinstance(m, PATSpatial) for m in modules) == pat_sp
    assert any(isinstance(m, PATSelfAttention) for m in modules) == pat_sf
    stage4 = {type(block) for block in backbone.stages[3]}
    assert stage4 == {PartialAttnBlock if pat_sf else PartialBlock}
    if pconv:
        assert all(not m.channel_attn for m in modules
                   if isinstance(m, PATChannel))
    with torch.no_grad():
        out = backbone.eval()(torch.randn(1, 3, 64, 64))[0]
    assert out.shape == (1, 512, 2, 2)


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
    warm-up, under a tight budget (8: the cost at a ratio of 1/64) with the
    additive term at a big weight and no lower bound."""
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import Runner
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    work_dir = tmp_path_factory.mktemp('dpconv_train')
    dpconv = dict(loss_form='additive', budget=8, theta=0.,
                  complexity_weight=1., warmup_epochs=1)
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

def test_deploy_with_learned_gates():
    model = PartialNet('t1', out_indices=(0, 1, 2, 3), dpconv=dict())
    model.init_weights()
    randomize_norms(model).eval()
    layers = [layer for _, layer in named_dpconvs(model)]
    units = [unit for _, unit in named_dpconv_costs(model)]
    for i, layer in enumerate(layers):
        # Zero gates 1..K (one is fixed), past the exact halvings of
        # 48 * 2**i = 2**(4+i) * 3 in PAT_ch; layer 5 out of order.
        if i == 5:
            set_gates(layer, values=[.5, -.5] * layer.num_gates)
        else:
            set_gates(layer, zeros=i % (layer.num_gates + 1))
        with torch.no_grad():  # weights big enough to matter
            layer.weight.normal_(0, .1)
    splits = [layer.split() for layer in layers]
    assert len({s['conv_channels'] / s['channels'] for s in splits}) > 3
    assert not splits[5]['ordered']

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
    costs = [unit.complexity().item() for unit in units]
    quarter = [unit.budget_complexity(2.) for unit in units]
    model.switch_to_deploy()
    model.switch_to_deploy()  # twice is harmless
    with torch.no_grad():
        after = model(x)
    assert model.deploy and all(layer.deploy for layer in layers)
    for out, ref in zip(after, before):
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    assert [layer.split() for layer in layers] == splits
    assert [unit.complexity().item() for unit in units] == costs
    # The MAC count of the deployed network against the plain T1 (1/4
    # everywhere): the difference is what the learned splits changed, as
    # the regulariser counts it.
    plain = PartialNet('t1', out_indices=(0, 1, 2, 3)).eval()
    plain.switch_to_deploy()
    diff = count_macs(model, x[:1]) - count_macs(plain, x[:1])
    assert diff == pytest.approx(sum(costs) - sum(quarter))

    # A model built with deploy=True takes every split from a deploy
    # checkpoint: it has no branches before (and says so), passes the
    # checkpoint checks, and loads strictly.
    fresh = PartialNet('t1', out_indices=(0, 1, 2, 3), dpconv=dict(),
                       deploy=True).eval()
    with pytest.raises(RuntimeError, match='deploy checkpoint'):
        fresh(x)
    state = model.state_dict()
    check_state_dict_fits(state, fresh, 'deploy.pth')
    fresh.load_state_dict(state, strict=True)
    with torch.no_grad():
        for out, ref in zip(fresh(x), after):
            torch.testing.assert_close(out, ref)
    assert [layer.split() for _, layer in named_dpconvs(fresh)] == splits
    assert fresh.stages[2][2].token_mixer.channel_perm is not None


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

def test_dpconv_report(trained, tmp_path):
    out = tmp_path / 'report'
    summary = dpconv_report(trained['config'], trained['checkpoint'],
                            str(out))
    with open(out / 'dpconv_ratios.json') as f:
        report = json.load(f)
    expected = dpconv_summary(trained['model'])
    assert [(layer['name'], layer['channels'], layer['conv_channels'],
             layer['ratio']) for layer in report['layers']] == [
        (layer['name'], layer['channels'], layer['conv_channels'],
         layer['ratio']) for layer in expected['layers']]
    assert report['layers'] == summary['layers']
    assert report['layers'][0]['name'] == \
        'backbone.stages.0.0.token_mixer.dpconv'
    assert [layer['kind'] for layer in report['layers']] == \
        ['PAT_ch'] * 4 + ['PAT_sf']
    assert report['totals']['num_layers'] == 5
    assert report['totals']['channels'] == 16 + 32 + 2 * 64 + 128
    png = out / 'dpconv_ratios.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    import matplotlib.image
    assert matplotlib.image.imread(str(png)).ndim == 3


def test_dpconv_report_of_a_runner_checkpoint(trained, tmp_path):
    summary = dpconv_report(trained['config'], trained['runner_checkpoint'],
                            str(tmp_path))
    assert summary['layers'] == dpconv_summary(trained['model'])['layers']


def test_dpconv_report_errors(trained, tmp_path):
    config, checkpoint = trained['config'], trained['checkpoint']
    with pytest.raises(FileNotFoundError, match='config file'):
        dpconv_report(str(tmp_path / 'nope.py'), checkpoint, str(tmp_path))
    with pytest.raises(FileNotFoundError, match='checkpoint'):
        dpconv_report(config, str(tmp_path / 'nope.pth'), str(tmp_path))
    # A config without DPConv.
    plain = tmp_path / 'plain.py'
    cfg = Config.fromfile(config)
    cfg.model.backbone.dpconv = None
    cfg.dump(str(plain))
    with pytest.raises(ValueError, match='no DPConv layers'):
        dpconv_report(str(plain), checkpoint, str(tmp_path))
    # A checkpoint without gates (trained without DPConv).
    no_gates = tmp_path / 'no_gates.pth'
    state = {k: v for k, v in trained['model'].state_dict().items()
             if not k.endswith('.gate')}
    torch.save(dict(state_dict=state), str(no_gates))
    with pytest.raises(ValueError, match='no DPConv gates'):
        dpconv_report(config, str(no_gates), str(tmp_path))


def fake_run_dir(root, name, config, state, top1):
    """A work dir as tools/train.py leaves it: a launch folder with the
    resolved config and validation scalars, a checkpoint and the
    ``last_checkpoint`` pointer."""
    work_dir = root / name
    vis = work_dir / '20261207_120000' / 'vis_data'
    vis.mkdir(parents=True)
    Config.fromfile(config).dump(str(vis / 'config.py'))
    with open(vis / 'scalars.json', 'w') as f:
        f.write(json.dumps({'loss': 1.0, 'step': 1}) + '\n')
        f.write(json.dumps({'accuracy/top1': top1, 'step': 2}) + '\n')
    checkpoint = work_dir / 'epoch_2.pth'
    torch.save(dict(meta=dict(epoch=2), state_dict=state), str(checkpoint))
    (work_dir / 'last_checkpoint').write_text(str(checkpoint))
    return str(work_dir)


def test_compare_runs(trained, tmp_path):
    torch.manual_seed(0)
    initial = build_classifier(dict(budget=8))  # gates at the start
    runs = [fake_run_dir(tmp_path, 'learned', trained['config'],
                         trained['model'].state_dict(), 62.5),
            fake_run_dir(tmp_path, 'initial', trained['config'],
                         initial.state_dict(), 25.0)]
    content = compare_runs(runs, str(tmp_path / 'out'),
                           labels=['learned', 'initial'])
    learned, start = content['runs']
    assert [run['top1'] for run in content['runs']] == [62.5, 25.0]
    assert [layer['ratio'] for layer in learned['layers']] == [
        layer['ratio'] for layer in dpconv_summary(trained['model'])
        ['layers']]
    # At the initial split (1/4 everywhere) the deployed network is the
    # plain PartialNet: the same MACs, counted on a model without DPConv.
    assert all(layer['ratio'] == .25 for layer in start['layers'])
    plain = build_classifier(None)
    plain.backbone.switch_to_deploy()
    assert start['deployed_macs'] == model_macs(plain, (224, 224))['total']
    # The learned run moved under its tight budget: fewer MACs.
    assert learned['deployed_macs'] < start['deployed_macs']
    with open(tmp_path / 'out' / 'dpconv_compare.json') as f:
        assert json.load(f) == content
    png = tmp_path / 'out' / 'dpconv_compare.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_compare_runs_errors(trained, tmp_path):
    with pytest.raises(ResultsError, match='no such work dir'):
        compare_runs([str(tmp_path / 'nope')], str(tmp_path / 'out'))
    run = fake_run_dir(tmp_path, 'run', trained['config'],
                       trained['model'].state_dict(), 50.)
    (tmp_path / 'run' / 'last_checkpoint').unlink()
    with pytest.raises(ResultsError, match='no last_checkpoint'):
        compare_runs([run], str(tmp_path / 'out'))
    with pytest.raises(ValueError, match='1 labels for 2 runs'):
        compare_runs([run, run], str(tmp_path / 'out'), labels=['a'])


def test_compare_command_line(trained, tmp_path, capsys):
    import runpy
    tool = runpy.run_path(osp.join(REPO, 'tools', 'dpconv_compare.py'))
    run = fake_run_dir(tmp_path, 'run', trained['config'],
                       trained['model'].state_dict(), 50.)
    tool['main']([run, '--out', str(tmp_path / 'out')])
    assert 'budget 8: top-1 50.00%' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='dpconv_compare: error: .*nope: '
                       'no such work dir'):
        tool['main']([str(tmp_path / 'nope'), '--out', str(tmp_path)])


@pytest.mark.slow
def test_dpconv_report_command_line(trained, tmp_path):
    tool = osp.join(REPO, 'tools', 'dpconv_report.py')
    done = subprocess.run(
        [sys.executable, tool, trained['config'], trained['checkpoint'],
         '--out', str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert '5 DPConv layers' in done.stdout
    assert (tmp_path / 'dpconv_ratios.png').is_file()
    done = subprocess.run(
        [sys.executable, tool, trained['config'], str(tmp_path / 'nope.pth'),
         '--out', str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 1
    assert 'dpconv_report: error: checkpoint' in done.stderr
