"""The deploy form of the backbone and its layers: switch_to_deploy and
PartialNet(deploy=True) give the train form's outputs."""
import copy

import pytest
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from conftest import VARIANTS
from deploy_helpers import randomize_norms, relative_diff
from mmpartial.models import PartialNet
from mmpartial.models.layers import (DPConv, DropPath, PartialMLP,
                                     PATChannel, PATSpatial)
from mmpartial.models.layers.deploy_ops import add_residual
from mmpartial.models.layers.pat_self_attn import RelPosSelfAttention
from mmpartial.models.utils import named_dpconvs

TOL = 1e-4


def classifier(arch, **kwargs):
    """A PartialNet classifier (backbone + head), randomised, eval mode."""
    pytest.importorskip('mmpretrain')  # the head is an mmpretrain ClsHead
    from mmpartial.models.heads import PartialNetClsHead
    backbone = PartialNet(arch, **kwargs)
    act = PartialNet.arch_zoo[arch]['act_cfg']
    head = PartialNetClsHead(10, backbone.channels[-1], act_cfg=act)
    model = nn.ModuleDict(dict(backbone=backbone, head=head))
    backbone.init_weights()
    head.init_weights()
    return randomize_norms(model).eval()


def logits(model, x):
    with torch.no_grad():
        return model['head'](model['backbone'](x))


def assert_deploy_structure(backbone):
    """Only the output norms are left as norms, nothing random is left."""
    out_norms = {getattr(backbone, f'norm{i}') for i in backbone.out_indices
                 } if backbone.out_norm else set()
    for name, module in backbone.named_modules():
        if isinstance(module, _BatchNorm):
            assert module in out_norms, name
        assert not isinstance(module, (nn.Dropout, DropPath)), name
        if isinstance(module, nn.LayerNorm):
            assert not module.elementwise_affine, name
        if isinstance(module, PATSpatial):
            assert module.linear_merged and isinstance(module.conv,
                                                       nn.Identity)
        if hasattr(module, 'deploy'):
            assert module.deploy, name


@pytest.mark.slow
@pytest.mark.parametrize('arch', VARIANTS)
def test_classifier_deploy_equivalence(arch):
    torch.manual_seed(0)
    model = classifier(arch)
    x = torch.randn(2, 3, 64, 64)
    ref = logits(model, x)
    keys = set(model.state_dict())
    model['backbone'].switch_to_deploy()
    out = logits(model, x)
    assert relative_diff(out, ref) < TOL
    assert_deploy_structure(model['backbone'])
    # The deploy form has fewer tensors; a fresh deploy model has the same.
    deployed = set(model.state_dict())
    assert len(deployed) < len(keys)
    fresh = PartialNet(arch, deploy=True)
    assert set(fresh.state_dict()) == {
        k[len('backbone.'):] for k in deployed if k.startswith('backbone.')}


@pytest.mark.parametrize('arch', ['t0', 't2'])
def test_detector_backbone_deploy_equivalence(arch):
    torch.manual_seed(1)
    backbone = PartialNet(arch, out_indices=(0, 1, 2, 3), out_norm=True)
    backbone.init_weights()
    randomize_norms(backbone).eval()
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        ref = backbone(x)
        backbone.switch_to_deploy()
        out = backbone(x)
    assert [o.shape for o in out] == [r.shape for r in ref]
    assert all(o.is_contiguous() for o in out)
    assert relative_diff(out, ref) < TOL
    assert_deploy_structure(backbone)


SMALL_ARCHS = {
    # T0's kind of block (GELU, PAT_sp) and T2's (ReLU, no PAT_sp), small.
    'gelu-pat_sp': dict(embed_dim=16, depths=[1, 1, 1, 1],
                        act_cfg=dict(type='GELU'), use_pat_sp=True),
    'relu': dict(embed_dim=16, depths=[1, 1, 1, 1], act_cfg=dict(type='ReLU'),
                 use_pat_sp=False),
}


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(SMALL_ARCHS))
def test_deploy_forward_equals_train_eager_and_compiled(name):
    """One deploy forward serves eager mode and torch.compile: compiled
    whole (no graph break), it gives the train form's outputs, as the eager
    one does."""
    torch.manual_seed(8)
    train = PartialNet(SMALL_ARCHS[name], out_indices=(0, 1, 2, 3),
                       out_norm=True)
    train.init_weights()
    randomize_norms(train).eval()
    deploy = copy.deepcopy(train)
    deploy.switch_to_deploy()
    x = torch.randn(2, 3, 64, 96)
    torch._dynamo.reset()
    compiled = torch.compile(deploy, fullgraph=True)
    with torch.no_grad():
        ref = train(x)
        eager = deploy(x)
        assert relative_diff(eager, ref) < TOL
        assert relative_diff(compiled(x), ref) < TOL
    # Under autograd (e.g. a deploy model fine-tuned), the same forward.
    xg = x.clone().requires_grad_(True)
    deploy(xg)[-1].sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()


@pytest.mark.parametrize('name', sorted(SMALL_ARCHS))
def test_deploy_inference_in_place_changes_nothing_but_memory(name):
    """Without autograd the deploy forward overwrites its own activations
    and residual sums: the same outputs as with autograd on (which takes
    the out-of-place path), bit for bit, and the input is left as it was.
    """
    torch.manual_seed(9)
    deploy = PartialNet(SMALL_ARCHS[name], out_indices=(0, 1, 2, 3))
    deploy.init_weights()
    randomize_norms(deploy).eval()
    deploy.switch_to_deploy()
    x = torch.randn(2, 3, 64, 96)
    kept = x.clone()
    with torch.no_grad():
        in_place = deploy(x)
    assert torch.equal(x, kept)
    out_of_place = deploy(x)
    assert all(o.requires_grad for o in out_of_place)
    for a, b in zip(in_place, out_of_place):
        assert torch.equal(a, b.detach())


def test_in_place_residual_keeps_the_promoted_dtype():
    """Under autocast a block's output can be bfloat16 and its residual
    float32: the sum stays float32, as out of place."""
    out = torch.randn(2, 8, 4, 4).bfloat16()
    residual = torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        summed = add_residual(out.clone(), residual)
        assert summed.dtype == torch.float32
        assert torch.equal(summed, residual + out)
        same = torch.randn(2, 8, 4, 4).bfloat16()
        fresh = same.clone()
        assert add_residual(fresh, same) is fresh  # in place


def test_switch_twice_and_deploy_model_loads_strictly():
    torch.manual_seed(2)
    backbone = randomize_norms(PartialNet('t1', out_indices=(0, 1, 2, 3),
                                          out_norm=True)).eval()
    backbone.switch_to_deploy()
    state = copy.deepcopy(backbone.state_dict())
    backbone.switch_to_deploy()  # a second call changes nothing
    assert all(torch.equal(state[k], v)
               for k, v in backbone.state_dict().items())
    fresh = PartialNet('t1', out_indices=(0, 1, 2, 3), out_norm=True,
                       deploy=True).eval()
    fresh.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(fresh(x), backbone(x)):
            assert torch.equal(a, b)


def test_deploy_in_train_mode_and_with_grad():
    # The deploy forward is for inference, but it must not depend on the
    # mode: nothing random is left, norms are folded.
    torch.manual_seed(3)
    backbone = randomize_norms(PartialNet('t0')).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = backbone(x)
    backbone.switch_to_deploy()
    backbone.train()
    assert relative_diff(backbone(x), ref) < TOL


def test_layers_deployed_on_their_own():
    """A layer deployed alone keeps what it cannot fold by itself."""
    torch.manual_seed(4)
    x = torch.randn(2, 32, 9, 7)
    for layer in (PATChannel(32), PATSpatial(32),
                  PartialMLP(32, use_pat_sp=True)):
        randomize_norms(layer).eval()
        with torch.no_grad():
            ref = layer(x)
            layer.switch_to_deploy()
            out = layer(x)
        assert relative_diff(out, ref) < TOL, type(layer).__name__
    # PAT_ch's norm after the gate is left to the block; PAT_sp alone keeps
    # its (norm-folded) linear convolution.
    pat_ch = PATChannel(32).eval()
    pat_ch.switch_to_deploy()
    assert isinstance(pat_ch.norm, _BatchNorm)
    pat_sp = PATSpatial(32).eval()
    pat_sp.switch_to_deploy()
    assert isinstance(pat_sp.conv, nn.Conv2d) and pat_sp.conv.bias is not None


def test_irpe_bias_cached_per_shape_and_refreshed_on_load():
    torch.manual_seed(5)
    attn = RelPosSelfAttention(24, num_heads=4, attn_drop=0., proj_drop=0.)
    randomize_norms(attn).eval()
    tokens = torch.randn(2, 12, 24)
    with torch.no_grad():
        ref = attn(tokens, 3, 4)
        attn.switch_to_deploy()
        assert relative_diff(attn(tokens, 3, 4), ref) < TOL
        attn(torch.randn(1, 6, 24), 2, 3)
        assert len(attn.rel_pos._bias_cache) == 2
        bias = attn.rel_pos(3, 4)
        assert bias.shape == (4, 12, 12)
        assert attn.rel_pos(3, 4) is bias  # gathered once
        # A new table (e.g. loading a checkpoint) is picked up.
        state = attn.state_dict()
        state['rel_pos.bias_table'] = state['rel_pos.bias_table'] + 1
        attn.load_state_dict(state)
        assert torch.allclose(attn.rel_pos(3, 4), bias + 1)


def set_gates(layer, zeros=None, values=None):
    """Set a DPConv's gates: ``zeros`` leading zero gates, or ``values``."""
    if values is None:
        values = [-.5] * zeros + [.5] * (layer.num_gates - zeros)
    with torch.no_grad():
        layer.gate.copy_(torch.tensor(values[:layer.num_gates]))


def test_dpconv_backbone_with_learned_gates():
    torch.manual_seed(6)
    backbone = PartialNet('t0', out_indices=(0, 1, 2, 3), out_norm=True,
                          dpconv=dict())
    backbone.init_weights()
    layers = [layer for _, layer in named_dpconvs(backbone)]
    for i, layer in enumerate(layers):
        if i == 3:  # out of order: a strided set of channels, by index
            set_gates(layer, values=[.5, -.5] * layer.num_gates)
        else:
            set_gates(layer, zeros=i % (layer.num_gates + 1))
        with torch.no_grad():
            layer.weight.normal_(0, .1)
    splits = [layer.split() for layer in layers]
    widths = {s['conv_channels'] / s['channels'] for s in splits}
    assert len(widths) > 3 and not splits[3]['ordered']
    randomize_norms(backbone).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = backbone(x)
        backbone.switch_to_deploy()
        out = backbone(x)
    assert relative_diff(out, ref) < TOL
    assert [layer.split() for layer in layers] == splits

    # A fresh deploy model learns the widths (and index) from the weights.
    fresh = PartialNet('t0', out_indices=(0, 1, 2, 3), out_norm=True,
                       dpconv=dict(), deploy=True).eval()
    fresh.load_state_dict(backbone.state_dict(), strict=True)
    with torch.no_grad():
        assert relative_diff(fresh(x), ref) < TOL
    fresh_layers = [layer for _, layer in named_dpconvs(fresh)]
    assert [layer.split() for layer in fresh_layers] == splits
    assert [layer.complexity().item() for layer in fresh_layers] == \
        [layer.complexity().item() for layer in layers]
    assert isinstance(fresh_layers[0], DPConv) and fresh_layers[0].deploy


def test_deploy_runs_in_bfloat16():
    torch.manual_seed(7)
    backbone = randomize_norms(PartialNet('t0')).eval()
    backbone.switch_to_deploy()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = backbone(x)[0]
        out = backbone.to(torch.bfloat16)(x.bfloat16())[0]
    assert out.dtype == torch.bfloat16
    assert relative_diff(out.float(), ref) < .1
