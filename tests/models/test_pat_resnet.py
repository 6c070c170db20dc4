import copy

import pytest
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from deploy_helpers import randomize_norms, relative_diff
from mmpartial.models import PATResNet
from mmpartial.models.backbones.pat_resnet import PATConv
from mmpartial.registry import MODELS

# Output channels of the four stages.
WIDTHS = {18: [64, 128, 256, 512], 50: [256, 512, 1024, 2048]}


@pytest.mark.parametrize('depth', [18, 50])
def test_output_shapes_follow_resnet(depth):
    # An odd-sized input: the strides round up as a ResNet's padded 3x3
    # convolutions do (the sizes mmdet's ResNet gives).
    model = PATResNet(depth).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 97, 111))
    sizes = [(25, 28), (13, 14), (7, 7), (4, 4)]
    assert [tuple(o.shape) for o in outs] == [
        (1, c, *s) for c, s in zip(WIDTHS[depth], sizes)]


@pytest.mark.slow
@pytest.mark.parametrize('depth', [34, 101])
def test_deeper_variants_build_and_run(depth):
    model = PATResNet(depth, out_indices=(3, )).eval()
    assert [len(getattr(model, f'layer{i}')) for i in range(1, 5)] == \
        list(PATResNet.arch_settings[depth][1])
    with torch.no_grad():
        out, = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 512 if depth == 34 else 2048, 2, 2)


def test_out_indices_select_stages():
    model = PATResNet(18, out_indices=(1, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [128, 512]


@pytest.mark.parametrize('depth', [0, 26, 152, '50'])
def test_bad_depth_lists_the_valid_ones(depth):
    with pytest.raises(ValueError, match=r'valid depths are \[18, 34, 50, '
                       r'101\]'):
        PATResNet(depth)


def test_bad_out_indices_and_frozen_stages():
    with pytest.raises(ValueError, match='out_indices'):
        PATResNet(18, out_indices=(4, ))
    with pytest.raises(ValueError, match='frozen_stages'):
        PATResNet(18, frozen_stages=5)


@pytest.mark.parametrize('depth', [18, 50])
def test_every_block_3x3_conv_is_a_patconv(depth):
    model = PATResNet(depth)
    patconvs = [m for m in model.modules() if isinstance(m, PATConv)]
    assert len(patconvs) == sum(PATResNet.arch_settings[depth][1]) * (
        2 if depth == 18 else 1)
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d) or module.kernel_size != (3, 3):
            continue
        # The only 3x3 kernels are the convolved part of a PATConv, on
        # n_div = 4 (PAT_ch's split) of its input.
        parent = model.get_submodule(name.rsplit('.', 1)[0])
        assert isinstance(parent, PATConv), name
        assert module.in_channels == parent.channels // 4
    # PAT_ch's split: the attention gets the other 3/4.
    assert model.layer1[0].conv2.attn_channels == 48


def test_split_ratio_option():
    model = PATResNet(50, n_div=2)
    conv = model.layer2[1].conv2
    assert (conv.conv_channels, conv.attn_channels) == (64, 64)


def test_resnet_names_so_a_checkpoint_loads_all_but_the_3x3_kernels():
    torchvision = pytest.importorskip('torchvision')
    reference = torchvision.models.resnet50().state_dict()
    own = PATResNet(50).state_dict()
    missing = [k for k, v in reference.items()
               if not k.startswith('fc.') and '.conv2.' not in k
               and '.bn2.' not in k
               and (k not in own or own[k].shape != v.shape)]
    assert missing == []
    assert all(own[k].shape == v.shape for k, v in reference.items()
               if '.bn2.' in k)


def test_registered_in_mmpartial_scope():
    model = MODELS.build(dict(type='mmpartial.PATResNet', depth=18))
    assert isinstance(model, PATResNet)


def test_frozen_stages_freeze_stem_and_stages():
    model = PATResNet(18, frozen_stages=2, norm_eval=False)
    model.train()
    for name, param in model.named_parameters():
        frozen = name.startswith(('conv1.', 'bn1.', 'layer1.', 'layer2.'))
        assert param.requires_grad != frozen, name
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm):
            frozen = name.startswith(('bn1', 'layer1.', 'layer2.'))
            assert module.training != frozen, name
    stem_only = PATResNet(18, frozen_stages=0).train()
    assert not stem_only.conv1.weight.requires_grad
    assert stem_only.layer1[0].conv1.conv.weight.requires_grad
    assert all(p.requires_grad for p in PATResNet(18).parameters())


def test_norm_eval_keeps_every_bn_in_eval():
    model = PATResNet(18, norm_eval=True).train()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    # PAT_ch's own norms (gate and post-gating) are kept too.
    assert len(norms) > 4 * 8 and not any(m.training for m in norms)
    stats = norms[5].running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(norms[5].running_mean, stats)
    assert all(m.training for m in PATResNet(18, norm_eval=False).train()
               .modules() if isinstance(m, _BatchNorm))


@pytest.mark.slow
def test_with_cp_same_outputs_and_gradients():
    torch.manual_seed(0)
    plain = PATResNet(18, norm_eval=False)
    plain.init_weights()
    randomize_norms(plain)
    ckpt = copy.deepcopy(plain)
    ckpt.with_cp = True
    x = torch.randn(2, 3, 64, 64)
    grads = []
    outs = []
    for model in (plain, ckpt):
        model.train()
        model.zero_grad()
        inp = x.clone().requires_grad_()
        out = model(inp)
        sum(o.square().mean() for o in out).backward()
        outs.append(out)
        grads.append([inp.grad] + [p.grad for p in model.parameters()])
    assert relative_diff(outs[1], outs[0]) < 1e-6
    assert all(g1 is not None and torch.allclose(g1, g0, rtol=1e-4,
                                                 atol=1e-6)
               for g0, g1 in zip(*grads))


@pytest.mark.slow
@pytest.mark.parametrize('depth,style', [(18, 'pytorch'), (50, 'pytorch'),
                                         (50, 'caffe')])
def test_deploy_keeps_outputs(depth, style):
    torch.manual_seed(0)
    model = PATResNet(depth, style=style, out_indices=(0, 1, 2, 3))
    model.init_weights()
    randomize_norms(model).eval()
    x = torch.randn(2, 3, 72, 88)
    with torch.no_grad():
        refs = model(x)
        model.switch_to_deploy()
        model.switch_to_deploy()  # twice is harmless
        outs = model(x)
    assert model.deploy
    # The post-gating norms were folded into the block's next BN.
    assert all(isinstance(m.norm, nn.Identity) and m.deploy
               for m in model.modules() if isinstance(m, PATConv))
    assert relative_diff(outs, refs) < 1e-5


def test_zero_init_residual():
    model = PATResNet(50)
    model.init_weights()
    assert all(block.bn3.weight.abs().sum() == 0
               for name in model.res_layers for block in getattr(model, name))
