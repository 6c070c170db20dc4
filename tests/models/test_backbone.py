import pytest
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmpartial.models import PartialNet
from mmpartial.models.layers import (PATChannel, PATSpatial,
                                     euclidean_buckets)
from mmpartial.models.layers.pat_self_attn import RelPosSelfAttention


def test_arch_zoo_channels_and_depths():
    for arch, (dim, depths) in dict(t0=(32, [1, 2, 8, 2]),
                                    t2=(64, [2, 2, 6, 4]),
                                    l=(160, [2, 3, 20, 4])).items():
        model = PartialNet(arch)
        assert model.channels == [dim, 2 * dim, 4 * dim, 8 * dim]
        assert [len(s) for s in model.stages] == depths


@pytest.mark.parametrize('size', [(224, 224), (333, 517)])
def test_output_shapes_and_strides(size):
    model = PartialNet('t0', out_indices=(0, 1, 2, 3), out_norm=True).eval()
    outs = model(torch.randn(2, 3, *size))
    h, w = size
    for i, out in enumerate(outs):
        stride = 4 * 2**i
        # Patchify convolutions floor the size at every downsampling.
        eh, ew = h // 4, w // 4
        for _ in range(i):
            eh, ew = eh // 2, ew // 2
        assert out.shape == (2, 32 * 2**i, eh, ew), (stride, out.shape)


def test_batch_size_one_in_train_mode():
    model = PartialNet('t0', out_indices=(0, 1, 2, 3)).train()
    outs = model(torch.randn(1, 3, 96, 64))
    assert [o.shape[1] for o in outs] == [32, 64, 128, 256]
    assert all(torch.isfinite(o).all() for o in outs)


def test_out_indices_subset_and_negative():
    model = PartialNet('t0', out_indices=(1, -1)).eval()
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [64, 256]
    assert model.out_indices == (1, 3)


def test_frozen_stages_freeze_params_and_bn():
    model = PartialNet('t0', out_indices=(0, 1, 2, 3), out_norm=True,
                       frozen_stages=2)
    model.train()
    for i in range(2):
        for module in (model.downsample_layers[i], model.stages[i],
                       getattr(model, f'norm{i}')):
            assert all(not p.requires_grad for p in module.parameters())
            assert all(not m.training for m in module.modules()
                       if isinstance(m, _BatchNorm))
    for module in (model.downsample_layers[2], model.stages[3]):
        assert all(p.requires_grad for p in module.parameters())
        assert all(m.training for m in module.modules())
    # Frozen BN statistics really stay put during a training forward.
    bn = model.downsample_layers[0].bn
    before = bn.running_mean.clone()
    outs = model(torch.randn(2, 3, 64, 64))
    sum(o.sum() for o in outs).backward()
    assert torch.equal(bn.running_mean, before)
    assert all(p.grad is None for p in model.stages[1].parameters())
    assert model.stages[2][0].mlp.fc1.weight.grad is not None


def test_norm_eval_keeps_bn_in_eval_but_trains_weights():
    model = PartialNet('t0', norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not m.training for m in bns)
    assert all(p.requires_grad for p in model.parameters())
    before = bns[3].running_var.clone()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(bns[3].running_var, before)
    assert model.stages[0].training  # only norms are switched


def test_with_cp_same_outputs_and_grads():
    torch.manual_seed(1)
    plain = PartialNet('t0', out_indices=(0, 1, 2, 3), attn_drop_rate=0.,
                       proj_drop_rate=0.)
    ckpt = PartialNet('t0', out_indices=(0, 1, 2, 3), attn_drop_rate=0.,
                      proj_drop_rate=0., with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 96)
    losses = []
    for model in (plain, ckpt):
        model.train()
        outs = model(x.clone().requires_grad_())
        loss = sum((o**2).mean() for o in outs)
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for (name, p1), p2 in zip(plain.named_parameters(), ckpt.parameters()):
        assert torch.allclose(p1.grad, p2.grad, atol=1e-6), name


def test_drop_path_rises_linearly():
    model = PartialNet('t2')  # spec rate 0.05 over 14 blocks
    rates = [getattr(b.drop_path, 'drop_prob', 0.) for s in model.stages
             for b in s]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.05)
    assert rates == sorted(rates)
    assert PartialNet('t2', drop_path_rate=0.).stages[3][3].drop_path \
        .__class__ is nn.Identity


def test_custom_arch_dict():
    model = PartialNet(dict(embed_dim=24, depths=[1, 1, 2, 1],
                            act_cfg=dict(type='ReLU'), use_pat_sp=True))
    out = model(torch.randn(1, 3, 64, 64))[0]
    assert out.shape == (1, 192, 2, 2)
    assert isinstance(model.stages[0][0].mlp.act, nn.ReLU)
    assert model.stages[0][0].mlp.pat_sp is not None


def test_unknown_arch_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        PartialNet('t3')
    for name in ('t0', 't1', 't2', 's', 'm', 'l'):
        assert repr(name) in str(err.value)
    with pytest.raises(ValueError, match='unknown keys'):
        PartialNet(dict(embed_dim=32, depths=[1, 1, 1, 1], width=3))
    with pytest.raises(ValueError, match='4 positive'):
        PartialNet(dict(embed_dim=32, depths=[1, 1, 1]))


def test_bad_out_indices_frozen_stages_input():
    with pytest.raises(ValueError, match='out_indices entry 4'):
        PartialNet('t0', out_indices=(0, 4))
    with pytest.raises(ValueError, match='frozen_stages'):
        PartialNet('t0', frozen_stages=5)
    model = PartialNet('t0').eval()
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\).*in_channels'):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match='smaller than .* stride of 32'):
        model(torch.randn(1, 3, 31, 128))
    gray = PartialNet('t0', in_channels=1).eval()
    assert gray(torch.randn(1, 1, 32, 32))[0].shape == (1, 256, 1, 1)


def test_pat_channel_matches_spec_formula():
    layer = PATChannel(16).eval()
    for bn in (layer.gate.norm, layer.norm):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-.5, .5)
    x = torch.randn(2, 16, 5, 7)
    x1, x2 = x[:, :4], x[:, 4:]
    flat = x2.flatten(2)
    style = torch.stack([flat.mean(-1), flat.std(-1)], -1)[:, :, None]
    gate = nn.functional.hardsigmoid(
        layer.gate.norm(nn.functional.conv2d(style, layer.gate.conv.weight)))
    expected = torch.cat([layer.conv(x1), layer.norm(x2 * gate)], 1)
    assert torch.allclose(layer(x), expected, atol=1e-6)


def test_pat_spatial_split_and_order():
    layer = PATSpatial(7).eval()  # odd width: gated part gets the extra one
    assert (layer.gated_channels, layer.linear_channels) == (4, 3)
    x = torch.randn(1, 7, 4, 4)
    w = torch.sigmoid(torch.zeros(1))  # placeholder to keep names short
    gate = nn.functional.hardsigmoid(layer.gate_conv(x[:, :4]))
    expected = torch.cat([layer.norm(x[:, :4] * gate),
                          layer.conv(layer.pre_norm(x[:, 4:]))], 1)
    assert torch.allclose(layer(x), expected, atol=1e-6) and w is not None


def test_euclidean_buckets_formula():
    index = euclidean_buckets(1, 60)  # a row: distance = |i - j|
    assert index[0, 0] == 40 and index[0, 7] == 47 and index[0, 20] == 60
    # r = 30: round(20 + ln(1.5)/ln(8)*20) = round(23.9) = 24
    assert index[0, 30] == 64
    # r = 59: round(20 + ln(2.95)/ln(8)*20) = round(30.4) = 30
    assert index[0, 59] == 70
    grid = euclidean_buckets(3, 4)
    # (0,0) to (2,3): sqrt(13) = 3.6 -> 4
    assert grid[0, 11] == 44 and torch.equal(grid, grid.T)
    # Far distances saturate at 2 * beta.
    assert euclidean_buckets(1, 2000)[0, -1] == 80


def test_rel_pos_bias_added_and_cached_per_shape():
    attn = RelPosSelfAttention(12, num_heads=4, attn_drop=0., proj_drop=0.)
    attn.rel_pos.bias_table.data.normal_()
    tokens = torch.randn(2, 6, 12)
    out = attn(tokens, 2, 3)
    # Recompute by hand.
    q, k, v = attn.qkv(tokens).reshape(2, 6, 3, 4, 3).permute(2, 0, 3, 1, 4)
    idx = euclidean_buckets(2, 3)
    logits = q @ k.transpose(-1, -2) * 3**-0.5 + \
        attn.rel_pos.bias_table[:, idx]
    ref = (logits.softmax(-1) @ v).transpose(1, 2).reshape(2, 6, 12)
    assert torch.allclose(out, attn.proj(ref), atol=1e-5)
    cache = attn.rel_pos._index_cache
    assert len(cache) == 1
    attn(tokens, 2, 3)
    attn(torch.randn(1, 4, 12), 2, 2)
    assert len(cache) == 2


def test_gradient_reaches_every_parameter():
    model = PartialNet('t0', out_indices=(0, 1, 2, 3), out_norm=True)
    model.init_weights()
    # Non-zero table so its gradient is informative.
    outs = model(torch.randn(2, 3, 64, 64))
    sum(o.pow(2).mean() for o in outs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_init_weights_spec():
    model = PartialNet('t0')
    model.init_weights()
    conv = model.stages[2][0].mlp.fc1.weight
    assert conv.std().item() == pytest.approx(0.02, rel=0.15)
    ln = model.stages[3][0].token_mixer.norm
    assert torch.all(ln.weight == 1) and torch.all(ln.bias == 0)
    table = model.stages[3][0].token_mixer.attn.rel_pos.bias_table
    assert torch.all(table == 0)
