import itertools

import pytest
import torch
import torch.nn.functional as F

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
