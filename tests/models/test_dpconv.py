"""DPConv itself, and a PAT layer whose split a DPConv learns (the layers;
the network, the hook and the configs are in test_dpconv_integration.py)."""
import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from mmpartial.models.layers import (PartialAttnBlock, PartialBlock,
                                     PATChannel, PATSelfAttention)
from mmpartial.models.layers.dpconv import DPConv, binarize_gate


def set_gates(layer, values):
    with torch.no_grad():
        layer.gate.copy_(torch.tensor(values, dtype=torch.float32))


def ordered_gates(num_gates, zeros, magnitude=0.5):
    return [-magnitude] * zeros + [magnitude] * (num_gates - zeros)


def reference_mask(channels, s):
    """U written from its definition, entry by entry, with no Kronecker
    product: channel ``i = i_outer * m + i_inner`` (``C = 2**a * m``); two
    channels share a block iff, for every zero gate, their bits at that
    gate's position agree (outer gates on ``i_outer``'s a bits, inner gates
    on ``i_inner``'s bits, most significant first)."""
    a = (channels & -channels).bit_length() - 1
    m = channels >> a
    b = len(s) - a
    mask = torch.zeros(channels, channels)
    for i, j in itertools.product(range(channels), repeat=2):
        (io, ii), (jo, ji) = divmod(i, m), divmod(j, m)
        keep = all(s[k] or (io >> (a - 1 - k)) & 1 == (jo >> (a - 1 - k)) & 1
                   for k in range(a))
        keep = keep and all(
            s[a + k] or (ii >> (b - 1 - k)) & 1 == (ji >> (b - 1 - k)) & 1
            for k in range(b))
        mask[i, j] = float(keep)
    return mask


class ConvMacCounter:
    """Count the multiply-adds of every F.conv2d call (nn.Conv2d included):
    ``out_ch * in_ch / groups * k * k * H_out * W_out`` per sample."""

    def __init__(self, monkeypatch):
        self.macs = 0
        original = F.conv2d

        def counted(x, weight, *args, **kwargs):
            out = original(x, weight, *args, **kwargs)
            out_ch, in_ch, kh, kw = weight.shape
            self.macs += out_ch * in_ch * kh * kw * out.shape[-2] * \
                out.shape[-1]
            return out

        monkeypatch.setattr(torch.nn.functional, 'conv2d', counted)


def test_binarize_forward_and_straight_through_backward():
    g = torch.tensor([-2., -1., -0.5, -1e-8, 0., 1e-8, 0.5, 1., 2.],
                     requires_grad=True)
    s = binarize_gate(g)
    # sign(0) counts as +1: an exactly-zero gate is a 1, never 0.5.
    assert s.tolist() == [0., 0., 0., 0., 1., 1., 1., 1., 1.]
    s.backward(torch.arange(1., 10.))
    # The gradient passes unchanged where |g| < 1, zero at |g| >= 1.
    assert g.grad.tolist() == [0., 0., 3., 4., 5., 6., 7., 0., 0.]


def test_gates_get_gradients_only_where_small():
    torch.manual_seed(0)
    layer = DPConv(16)
    set_gates(layer, [-0.5, 2.0, 0.3, -1.5])
    x = torch.randn(2, 16, 6, 6)
    (layer(x) * torch.randn(2, 16, 6, 6)).sum().backward()
    grad = layer.gate.grad
    assert grad[0] != 0 and grad[2] != 0
    assert grad[1] == 0 and grad[3] == 0
    assert layer.weight.grad is not None


@pytest.mark.parametrize('channels', [16, 48])
def test_gate_gradient_is_the_flip_difference(channels):
    # The mask is multilinear in s, so for a loss linear in the output the
    # estimated gradient of a gate equals L(s_k = 1) - L(s_k = 0).
    torch.manual_seed(1)
    layer = DPConv(channels)
    num_gates = layer.num_gates
    values = [(-0.3 if k % 3 == 1 else 0.4) for k in range(num_gates)]
    set_gates(layer, values)
    x = torch.randn(1, channels, 5, 5)
    probe = torch.randn(1, channels, 5, 5)
    (layer(x) * probe).sum().backward()
    grad = layer.gate.grad.clone()
    for k in range(num_gates):
        losses = []
        for sign in (1., -1.):
            flipped = list(values)
            flipped[k] = sign * 0.4
            set_gates(layer, flipped)
            with torch.no_grad():
                losses.append((layer(x) * probe).sum().item())
        assert grad[k].item() == pytest.approx(losses[0] - losses[1],
                                               rel=1e-4, abs=1e-4)


@pytest.mark.parametrize('channels', [8, 64, 48, 96])
def test_ordered_gates_give_equal_diagonal_blocks(channels):
    layer = DPConv(channels, init_split=1.)
    for zeros in range(layer.exact_gates + 1):
        set_gates(layer, ordered_gates(layer.num_gates, zeros))
        groups, size = 2**zeros, channels // 2**zeros
        expected = torch.kron(torch.eye(groups), torch.ones(size, size))
        assert torch.equal(layer.mask(), expected)
        # The forward's mask keeps only the first block: a partial conv.
        conv_mask = torch.zeros(channels, channels)
        conv_mask[:size, :size] = 1
        assert torch.equal(layer.conv_mask(), conv_mask)
        split = layer.split()
        assert split == dict(channels=channels, conv_channels=size,
                             ratio=size / channels, num_groups=groups,
                             zero_gates=zeros, ordered=True)


def test_cropped_blocks_for_odd_factor():
    # 48 = 16 * 3: beyond four halvings the odd 3 splits as {0, 1}, {2}.
    layer = DPConv(48)
    set_gates(layer, ordered_gates(6, 5))
    block = torch.tensor([[1., 1., 0.], [1., 1., 0.], [0., 0., 1.]])
    assert torch.equal(layer.mask(), torch.kron(torch.eye(16), block))
    assert layer.split()['conv_channels'] == 2
    assert layer.split()['num_groups'] == 32
    set_gates(layer, ordered_gates(6, 6))
    assert torch.equal(layer.mask(), torch.eye(48))
    assert layer.split()['conv_channels'] == 1

    odd = DPConv(3, init_split=0.5)  # no exact halving: crop of a 4-mask
    assert torch.equal(odd.mask(), block)
    assert odd.split()['conv_channels'] == 2


@pytest.mark.parametrize('channels', [4, 16, 12, 48, 3, 5])
def test_mask_and_complexity_match_the_definition(channels):
    layer = DPConv(channels)
    for bits in itertools.product((0, 1), repeat=layer.num_gates):
        set_gates(layer, [0.5 if b else -0.5 for b in bits])
        expected = reference_mask(channels, bits)
        assert torch.equal(layer.mask(), expected)
        nnz = int(expected.sum())
        assert layer.complexity().item() == nnz
        if channels & (channels - 1) == 0:
            assert nnz == 2**(layer.num_gates + sum(bits))


def test_complexity_hand_count_and_gradient():
    layer = DPConv(48)  # 1/4 split: 4 blocks of 12 channels
    assert layer.complexity().item() == 4 * 12 * 12
    layer = DPConv(64, init_split=1 / 8)
    complexity = layer.complexity()
    assert complexity.item() == 8 * 8 * 8
    complexity.backward()
    # More ones, more nonzeros: every gate (all |g| < 1) is pushed down.
    assert (layer.gate.grad > 0).all()


@pytest.mark.parametrize('values, expected', [
    ([-0.1, -0.2, 0.3, 0.4], 0.),
    ([0.1, 0.2, 0.3, 0.4], 0.),
    ([-0.1, -0.2, -0.3, -0.4], 0.),
    ([0.3, -0.2, 0.1, -0.4], 0.2 + 0.1 + 0.4),
    ([-0.1, 0.2, -0.3, 0.4], 0.3 + 0.4),
    ([0.1, 0.2, 0.3, -0.4], 0.4),
    ([1.5, -2.0, 0.25, 0.5], 2.0 + 0.25 + 0.5),
])
def test_ordering_loss(values, expected):
    layer = DPConv(16)
    set_gates(layer, values)
    loss = layer.ordering_loss()
    assert loss.item() == pytest.approx(expected)
    assert layer.split()['ordered'] == (expected == 0.)
    loss.backward()
    first = next((k for k in range(1, 4)
                  if values[k] < 0 and max(values[:k]) >= 0), 4)
    sign = [0.] * first + [1. if v >= 0 else -1. for v in values[first:]]
    assert layer.gate.grad.tolist() == sign


@pytest.mark.parametrize('channels, init_split, gates', [
    (64, 1 / 4, None),
    (64, 1., None),
    (64, 1 / 64, None),
    (48, 1 / 4, None),
    (48, 1 / 32, None),
    (48, 1., [0.3, -0.2, 0.1, -0.4, 0.2, 0.6]),  # unordered: by index
    (3, 0.5, None),
])
def test_deploy_equivalence_and_macs(monkeypatch, channels, init_split,
                                     gates):
    torch.manual_seed(2)
    layer = DPConv(channels, init_split=init_split)
    if gates is not None:
        set_gates(layer, gates)
    with torch.no_grad():
        layer.weight.normal_(std=0.1)  # outputs of order 1
    split = layer.split()
    n = split['conv_channels']
    x = torch.randn(2, channels, 7, 9)
    layer.eval()
    counter = ConvMacCounter(monkeypatch)
    with torch.no_grad():
        before = layer(x)
    macs_before = counter.macs
    layer.switch_to_deploy()
    counter.macs = 0
    with torch.no_grad():
        after = layer(x)
    macs_after = counter.macs

    assert layer.deploy
    assert not hasattr(layer, 'gate') and not hasattr(layer, 'weight')
    assert all('gate' not in name for name, _ in layer.named_parameters())
    assert (after - before).abs().max().item() < 1e-5
    assert layer.split() == split
    assert macs_before == channels * channels * 3 * 3 * 7 * 9
    assert macs_after == n * n * 3 * 3 * 7 * 9
    if split['zero_gates'] > 0:
        assert macs_after < macs_before
    # Channels outside the convolved block are copied unchanged.
    passed = torch.ones(channels, dtype=torch.bool)
    passed[layer.conv_index if layer.conv_index is not None else
           torch.arange(n)] = False
    assert torch.equal(after[:, passed], x[:, passed])
    layer.switch_to_deploy()  # a second call is a no-op
    assert torch.equal(layer(x), after)


def test_non_power_of_two_width_trains():
    # A full-conv teacher: the 1/4 start has to open its gates to fit it.
    torch.manual_seed(3)
    layer = DPConv(48)
    teacher = torch.randn(48, 48, 3, 3) * 0.05
    x = torch.randn(8, 48, 8, 8)
    target = F.conv2d(x, teacher, padding=1)
    optimizer = torch.optim.SGD([
        dict(params=[layer.weight], lr=0.5),
        dict(params=[layer.gate], lr=1e-3)
    ])
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        out = layer(x)
        assert out.shape == x.shape
        loss = F.mse_loss(out, target)
        loss.backward()
        assert (layer.gate.grad != 0).all()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
    assert layer.split()['conv_channels'] == 48


@pytest.mark.parametrize('channels, init_split', [(64, 1.), (48, 1 / 4)])
def test_complexity_budget_flips_a_gate(channels, init_split):
    layer = DPConv(channels, init_split=init_split)
    before = layer.split()
    optimizer = torch.optim.SGD([layer.gate], lr=1e-3)
    for _ in range(3):
        optimizer.zero_grad()
        layer.complexity().backward()
        optimizer.step()
    after = layer.split()
    assert after['zero_gates'] > before['zero_gates']
    assert after['ratio'] < before['ratio']


def test_frozen_gates_keep_the_split():
    torch.manual_seed(4)
    layer = DPConv(32, gates_frozen=True)
    before = layer.split()
    optimizer = torch.optim.SGD(layer.parameters(), lr=1e-3)
    x = torch.randn(2, 32, 5, 5)
    for _ in range(3):
        optimizer.zero_grad()
        loss = layer(x).square().mean() + layer.complexity() + \
            layer.ordering_loss()
        loss.backward()
        # Still in the graph (a zero gradient, not None), for DDP.
        assert torch.equal(layer.gate.grad, torch.zeros(5))
        optimizer.step()
    assert layer.split() == before
    layer.gates_frozen = False
    optimizer.zero_grad()
    layer.complexity().backward()
    assert (layer.gate.grad != 0).all()


def test_default_and_explicit_initial_split():
    for channels in (32, 48, 96, 160):
        split = DPConv(channels).split()
        assert split['conv_channels'] == channels // 4
        assert split['ordered']
    assert DPConv(64, init_split=1.).split()['ratio'] == 1.
    assert DPConv(64, init_split=1 / 2).split()['conv_channels'] == 32
    assert DPConv(2).split()['conv_channels'] == 1  # one gate: 1/2
    layer = DPConv(64, init_gate=1e-3)
    assert layer.gate.abs().eq(1e-3).all()


@pytest.mark.parametrize('kwargs, error, words', [
    (dict(channels=1), ValueError, ['channels', '>= 2']),
    (dict(channels=0), ValueError, ['channels', '>= 2']),
    (dict(channels=16.), TypeError, ['channels', 'int']),
    (dict(channels=True), TypeError, ['channels']),
    (dict(channels=16, kernel_size=2), ValueError, ['kernel_size', 'odd']),
    (dict(channels=16, kernel_size=0), ValueError, ['kernel_size', '>= 1']),
    (dict(channels=16, kernel_size=-3), ValueError, ['kernel_size']),
    (dict(channels=16, kernel_size=(3, 3)), TypeError, ['kernel_size']),
    (dict(channels=16, init_gate=0.), ValueError, ['init_gate', '(0, 1)']),
    (dict(channels=16, init_gate=1.), ValueError, ['init_gate', '(0, 1)']),
    (dict(channels=16, init_gate='small'), TypeError, ['init_gate']),
    (dict(channels=16, init_split=0.3), ValueError, ['init_split', '2**-z']),
    (dict(channels=16, init_split=1 / 32), ValueError,
     ['init_split', '[0, 4]']),
    (dict(channels=16, init_split=0.), ValueError, ['init_split']),
    (dict(channels=16, init_split=2.), ValueError, ['init_split']),
    (dict(channels=16, gates_frozen=1), TypeError, ['gates_frozen']),
    (dict(channels=16, groups=2), TypeError, ['groups', 'kernel_size']),
])
def test_bad_arguments(kwargs, error, words):
    with pytest.raises(error) as info:
        DPConv(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_no_gates_after_deploy():
    layer = DPConv(16)
    layer.switch_to_deploy()
    assert layer.complexity().item() == 4 * 4 * 4
    assert layer.ordering_loss().item() == 0.
    with pytest.raises(RuntimeError, match='switch_to_deploy'):
        layer.mask()


# ------------------------------------------------------------ fixed gates

def test_fixed_gates_bound_the_split():
    layer = DPConv(64, min_zeros=1, max_zeros=4, init_split=1 / 4)
    assert layer.total_gates == 6 and layer.num_gates == 3
    assert layer.gate.shape == (3, )
    assert layer.gate_bits().tolist() == [0., 0., 1., 1., 1., 1.]
    # All free gates 1: the most the layer convolves is half; all 0: 1/16.
    set_gates(layer, [.5, .5, .5])
    assert layer.split()['conv_channels'] == 32
    set_gates(layer, [-.5, -.5, -.5])
    split = layer.split()
    assert split['conv_channels'] == 4 and split['zero_gates'] == 4
    assert layer.complexity().item() == 64 * 64 / 16
    # Gradients reach the free gates only (the fixed ones are constants).
    layer.complexity().backward()
    assert layer.gate.grad.shape == (3, ) and (layer.gate.grad != 0).all()
    with pytest.raises(ValueError, match=r'\[1, 4\]'):
        DPConv(64, min_zeros=1, max_zeros=4, init_split=1.)
    with pytest.raises(ValueError, match='max_zeros'):
        DPConv(64, max_zeros=7)
    with pytest.raises(ValueError, match='max_zeros'):
        DPConv(64, min_zeros=3, max_zeros=2)


def test_conv_indicator_is_the_conv_mask_diagonal():
    for channels in (16, 48, 12):
        layer = DPConv(channels)
        for bits in itertools.product((0, 1), repeat=layer.num_gates):
            set_gates(layer, [0.5 if b else -0.5 for b in bits])
            assert torch.equal(layer.conv_indicator(),
                               layer.conv_mask().diagonal())


def test_random_init_and_group_train_form():
    torch.manual_seed(5)
    layer = DPConv(32, init_split='random', train_form='group')
    torch.testing.assert_close(layer.gate.abs(), torch.full((5, ), 1e-8))
    assert len(set(layer.gate.sign().tolist())) == 2  # a random split
    x = torch.randn(2, 32, 6, 6)
    with torch.no_grad():
        layer.weight.normal_(std=.1)
        # Training mode: the reference's group convolution over all
        # channels; eval mode: the partial convolution it deploys.
        train = layer.train()(x)
        group = F.conv2d(x, layer.weight * layer.mask()[:, :, None, None],
                         padding=1)
        torch.testing.assert_close(train, group)
        partial = layer.eval()(x)
        layer.switch_to_deploy()
        torch.testing.assert_close(layer(x), partial, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match='train_form'):
        DPConv(32, train_form='grouped')


# ------------------------------------------- PAT layers with a learned split

@torch.no_grad()
def randomize(module, seed=0):
    """Non-trivial weights, norm statistics and iRPE tables (the DPConv
    gates, which set the split, are left as they are)."""
    gen = torch.Generator().manual_seed(seed)
    for name, param in module.named_parameters():
        if name.endswith('dpconv.gate'):
            continue
        noise = torch.randn(param.shape, generator=gen)
        if 'norm' in name and name.endswith('weight'):
            param.copy_(1 + .3 * noise)
        else:
            param.copy_(.2 * noise)
    for sub in module.modules():
        if isinstance(sub, _BatchNorm):
            sub.running_mean.copy_(
                .3 * torch.randn(sub.running_mean.shape, generator=gen))
            sub.running_var.copy_(
                .5 + torch.rand(sub.running_var.shape, generator=gen))
    return module


def pat_pair(kind, channels, n_div, **kwargs):
    """A PAT layer with a DPConv at the split 1/n_div and the plain PAT
    layer with that n_div, in eval mode, the plain one's weights mapped by
    hand from the first's masked training form (no dropout)."""
    if kind == 'ch':
        learned = PATChannel(channels, n_div, dpconv=dict(), **kwargs)
        plain = PATChannel(channels, n_div, **kwargs)
    else:
        extra = dict(attn_drop=0., proj_drop=0.)
        learned = PATSelfAttention(channels, n_div, dpconv=dict(), **extra)
        plain = PATSelfAttention(channels, n_div, **extra)
    randomize(learned).eval()
    n = channels // n_div
    own = learned.state_dict()
    mapped = {'conv.weight': own['dpconv.weight'][:n, :n]}
    if kind == 'ch':
        for key, value in plain.state_dict().items():
            if key == 'conv.weight':
                continue
            full = own['masked_' + key]
            if key.endswith('num_batches_tracked'):
                mapped[key] = full
            elif key == 'gate.conv.weight':
                mapped[key] = full[n:, n:]
            else:
                mapped[key] = full[n:]
    else:
        d = channels - n
        mapped.update({
            'norm.weight': own['masked_norm.weight'][n:],
            'norm.bias': own['masked_norm.bias'][n:],
            'attn.qkv.weight': own['masked_attn.qkv.weight'].view(
                3, channels, channels)[:, n:, n:].reshape(3 * d, d),
            'attn.proj.weight': own['masked_attn.proj.weight'][n:, n:],
            'attn.proj.bias': own['masked_attn.proj.bias'][n:],
            'attn.rel_pos.bias_table':
            own['masked_attn.rel_pos.bias_table'],
        })
    plain.load_state_dict(mapped, strict=True)
    return learned, plain.eval()


def count_macs(module, x):
    """mmengine's (fvcore's) multiply-adds of convolutions, linear layers
    and matrix products (its norm counts left out), per image of ``x``."""
    from mmengine.analysis import FlopAnalyzer
    flops = FlopAnalyzer(module, x)
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    by_op = flops.by_operator()
    return sum(by_op.get(op, 0) for op in ('conv', 'linear', 'matmul',
                                           'addmm', 'bmm')) / x.shape[0]


def hand_macs(kind, channels, n, height, width):
    tokens = height * width
    d = channels - n
    attn = 2 * d * d if kind == 'ch' else \
        4 * tokens * d * d + 2 * tokens * tokens * d
    return 9 * tokens * n * n + attn


@pytest.mark.parametrize('kind', ['ch', 'sf'])
@pytest.mark.parametrize('n_div', [2, 4])
def test_learned_split_at_one_over_n_is_the_plain_layer(kind, n_div):
    channels, h, w = 64, 7, 6
    learned, plain = pat_pair(kind, channels, n_div)
    n = channels // n_div
    assert learned.dpconv.split()['conv_channels'] == n
    x = torch.randn(2, channels, h, w)
    with torch.no_grad():
        ref = plain(x)
        # The masked training form (eval mode) computes the plain layer.
        torch.testing.assert_close(learned(x), ref, atol=1e-5, rtol=1e-4)
        learned.switch_to_deploy()
        plain.switch_to_deploy()
        out = learned(x)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(plain(x), ref, atol=1e-5, rtol=1e-4)
    # Same structure: the plain layer's modules, shapes and (sliced)
    # weights; of the DPConv only its record of the split is left.
    state = learned.state_dict()
    assert set(state) - set(plain.state_dict()) == {'dpconv.split_stats'}
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(state[key], value, atol=1e-6, rtol=1e-5)
    assert [type(m) for m in learned.children() if m is not learned.dpconv
            ] == [type(m) for m in plain.children()]
    assert not any(p.numel() for p in learned.dpconv.parameters())
    # Same MACs, counted by mmengine.analysis, by hand and by the
    # regulariser's count.
    macs = count_macs(learned, x)
    assert macs == count_macs(plain, x)
    assert macs == hand_macs(kind, channels, n, h, w)
    assert learned.complexity((h, w)).item() == macs


@pytest.mark.parametrize('kind', ['ch', 'sf'])
def test_masked_training_form_matches_the_plain_layer_in_train_mode(kind):
    # Batch statistics per channel, dropout off: the masked form trains
    # what the plain layer at that split would.
    learned, plain = pat_pair(kind, 64, 4)
    learned.train()
    plain.train()
    x = torch.randn(3, 64, 5, 5)
    torch.testing.assert_close(learned(x), plain(x), atol=1e-5, rtol=1e-4)
    if kind == 'ch':
        for name in ('gate.norm', 'norm'):
            full = learned.get_submodule('masked_' + name)
            torch.testing.assert_close(
                full.running_mean[16:],
                plain.get_submodule(name).running_mean)


@pytest.mark.parametrize('kind', ['ch', 'sf'])
def test_gradients_reach_the_gates_through_both_branches(kind):
    torch.manual_seed(6)
    layer = randomize(
        PATChannel(64, dpconv=dict()) if kind == 'ch' else
        PATSelfAttention(64, dpconv=dict(), attn_drop=0., proj_drop=0.))
    x = torch.randn(2, 64, 6, 6)
    probe = torch.randn(2, 64, 6, 6)

    def gate_grad():
        layer.zero_grad()
        (layer(x) * probe).sum().backward()
        return layer.dpconv.gate.grad.clone()

    both = gate_grad()
    assert (both != 0).all()
    # The attention branch alone: no convolution at all.
    with torch.no_grad():
        layer.dpconv.weight.zero_()
    assert (gate_grad() != 0).all()
    # The convolution alone: the attention branch outputs zeros.
    randomize(layer)
    with torch.no_grad():
        if kind == 'ch':
            layer.masked_norm.weight.zero_()
            layer.masked_norm.bias.zero_()
        else:
            layer.masked_attn.proj.weight.zero_()
            layer.masked_attn.proj.bias.zero_()
    assert (gate_grad() != 0).all()
    # The cost (both branches' MACs) is differentiable too.
    layer.zero_grad()
    layer.complexity().backward()
    assert (layer.dpconv.gate.grad != 0).all()


def test_cost_counts_both_branches():
    # PAT_ch at 56x56: halving the convolution saves far more than the
    # bigger gate costs. PAT_sf at 7x7: the attention costs more than the
    # convolution, so giving it more channels costs more.
    ch = PATChannel(32, dpconv=dict())
    sf = PATSelfAttention(256, dpconv=dict())
    for layer, hw, cheaper in ((ch, (56, 56), True), (sf, (7, 7), False)):
        quarter = layer.complexity(hw).item()
        assert quarter == hand_macs('ch' if layer is ch else 'sf',
                                    layer.channels, layer.channels // 4,
                                    *hw)
        assert layer.budget_complexity(2., hw) == quarter
        set_gates(layer.dpconv, [-.5] * layer.dpconv.num_gates)
        assert (layer.complexity(hw).item() < quarter) == cheaper
    with pytest.raises(RuntimeError, match='input size'):
        PATChannel(32, dpconv=dict()).complexity()


@pytest.mark.parametrize('kind', ['ch', 'sf'])
def test_gates_out_of_order_deploy_by_permutation(kind):
    torch.manual_seed(7)
    channels = 64
    if kind == 'ch':
        layer = PATChannel(channels, dpconv=dict())
    else:
        layer = PATSelfAttention(channels, dpconv=dict(), attn_drop=0.,
                                 proj_drop=0.)
    randomize(layer).eval()
    gates = layer.dpconv.num_gates
    set_gates(layer.dpconv, ([.5, -.5] * gates)[:gates])
    split = layer.dpconv.split()
    assert not split['ordered']
    x = torch.randn(2, channels, 5, 6)
    with torch.no_grad():
        ref = layer(x)
        layer.switch_to_deploy()
        assert layer.channel_perm is not None
        torch.testing.assert_close(layer(x), ref, atol=1e-5, rtol=1e-4)
    assert layer.dpconv.split() == split
    conv_index = layer.channel_perm[:layer.conv_channels]
    assert not torch.equal(conv_index, torch.arange(layer.conv_channels))


@pytest.mark.parametrize('block_type', [PartialBlock, PartialAttnBlock])
@pytest.mark.parametrize('ordered', [True, False])
def test_block_with_learned_split_deploys(block_type, ordered):
    torch.manual_seed(8)
    extra = dict(attn_drop=0., proj_drop=0.) \
        if block_type is PartialAttnBlock else {}
    block = randomize(block_type(64, dpconv=dict(), **extra)).eval()
    dpconv = block.token_mixer.dpconv
    values = [.5, -.5, .5, -.5, .5] if not ordered else \
        [-.5, .5, .5, .5, .5]
    set_gates(dpconv, values[:dpconv.num_gates])
    x = torch.randn(2, 64, 6, 6)
    with torch.no_grad():
        ref = block(x)
        block.switch_to_deploy()
        out = block(x)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    # PAT_ch's norm after the gating is folded into fc1, also when its
    # channels are scattered back to a strided set.
    assert not any(isinstance(m, _BatchNorm) for m in block.modules())


def test_plain_checkpoint_loads_into_a_learned_split():
    torch.manual_seed(9)
    for plain, learned in (
            (PATChannel(64), PATChannel(64, dpconv=dict())),
            (PATSelfAttention(64, attn_drop=0., proj_drop=0.),
             PATSelfAttention(64, dpconv=dict(), attn_drop=0.,
                              proj_drop=0.))):
        randomize(plain, seed=1).eval()
        randomize(learned, seed=2).eval()
        gate = learned.dpconv.gate.clone()
        result = learned.load_state_dict(plain.state_dict(), strict=True)
        assert not result.missing_keys and not result.unexpected_keys
        assert torch.equal(learned.dpconv.gate, gate)
        x = torch.randn(2, 64, 5, 5)
        with torch.no_grad():
            torch.testing.assert_close(learned(x), plain(x), atol=1e-5,
                                       rtol=1e-4)


def test_pat_layer_split_arguments():
    # PAT_sf keeps an attention width its heads divide: 1/2 .. 1/64 for
    # 256 channels and 4 heads; 1/2 .. 1/32 for 384 (= 2**7 * 3).
    assert PATSelfAttention.max_halvings(256, 4) == 6
    assert PATSelfAttention.max_halvings(384, 4) == 5
    layer = PATSelfAttention(256, dpconv=dict())
    assert (layer.dpconv.min_zeros, layer.dpconv.max_zeros) == (1, 6)
    assert (PATChannel(48, dpconv=dict()).dpconv.max_zeros ==
            DPConv(48).total_gates)
    with pytest.raises(ValueError, match='no split'):
        PATSelfAttention(6, num_heads=4, dpconv=dict())
    with pytest.raises(ValueError, match='power of two'):
        PATChannel(64, n_div=3, dpconv=dict())
    with pytest.raises(ValueError, match='either conv'):
        PATChannel(64, dpconv=dict(), conv=nn.Conv2d(16, 16, 3, padding=1))
    with pytest.raises(ValueError, match='unknown DPConv option'):
        PATChannel(64, dpconv=dict(budget=2))
    with pytest.raises(ValueError, match='init_split'):
        PATSelfAttention(256, dpconv=dict(init_split=1 / 256))
    with pytest.raises(TypeError, match='channel_attn'):
        PATChannel(64, channel_attn=1)


def test_plain_partial_convolution_switch():
    # channel_attn=False: FasterNet's partial convolution, the rest
    # passed through unchanged.
    layer = PATChannel(64, channel_attn=False).eval()
    assert [name for name, _ in layer.named_parameters()] == ['conv.weight']
    x = torch.randn(2, 64, 5, 5)
    with torch.no_grad():
        out = layer(x)
        assert torch.equal(out[:, 16:], x[:, 16:])
        torch.testing.assert_close(out[:, :16], layer.conv(x[:, :16]))
        layer.switch_to_deploy()
        torch.testing.assert_close(layer(x), out)
