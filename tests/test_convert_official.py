import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO, VARIANTS, reference_layout
from mmpartial.models import PartialNet
from mmpartial.utils.official_weights import (ConversionError,
                                              convert_official_state_dict,
                                              detect_official_arch)
from reference_forward import reference_forward


def random_reference_state(name, seed=0):
    """A reference-layout state dict with random, non-trivial values."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, (shape, dtype) in reference_layout(name).items():
        if dtype == torch.int64:
            state[key] = torch.tensor(100)
        elif key.endswith('running_var'):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith(('norm.weight', 'bn.weight', 'norm2.weight',
                           '.1.weight')) and len(shape) == 1:
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.1
    return state


@pytest.mark.parametrize('name', [*VARIANTS, 't2_fork_feat'])
def test_every_reference_key_maps_with_its_shape(name):
    state = random_reference_state(name)
    converted, meta = convert_official_state_dict(state)
    assert meta['arch'] == name[:2].rstrip('_')
    assert len(converted) == len(state)
    assert meta['with_head'] == (name != 't2_fork_feat')
    assert meta['with_out_norm'] == (name == 't2_fork_feat')


@pytest.mark.parametrize('name', ['t0', 't2'])
def test_converted_weights_give_reference_logits(name):
    from mmpartial.models import PartialNetClsHead
    state = random_reference_state(name, seed=1)
    converted, meta = convert_official_state_dict(state)
    backbone = PartialNet(meta['arch'])
    act = dict(type='GELU' if name in ('t0', 't1') else 'ReLU')
    head = PartialNetClsHead(1000, backbone.channels[-1], act_cfg=act)
    backbone.load_state_dict({k[9:]: v for k, v in converted.items()
                              if k.startswith('backbone.')})
    head.load_state_dict({k[5:]: v for k, v in converted.items()
                          if k.startswith('head.')})
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        ours = head(backbone.eval()(x))
        ref = reference_forward(state, x, F.gelu if act['type'] == 'GELU'
                                else F.relu)
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-4 * ref.abs().max())


def test_wrappers_and_ddp_prefix_are_unwrapped():
    state = random_reference_state('t0')
    for wrapped in (dict(state_dict=state), dict(model=state),
                    {f'module.{k}': v for k, v in state.items()}):
        converted, _ = convert_official_state_dict(wrapped)
        assert len(converted) == len(state)


def test_wrong_variant_and_missing_key_fail_with_a_list():
    state = random_reference_state('t0')
    with pytest.raises(ConversionError, match='PartialNet-t0, not .*t1'):
        convert_official_state_dict(state, arch='t1')
    del state['stages.4.blocks.3.mlp.4.norm2.running_var']
    state['stages.0.blocks.0.extra.weight'] = torch.zeros(1)
    with pytest.raises(ConversionError) as err:
        convert_official_state_dict(state)
    msg = str(err.value)
    assert 'missing (1)' in msg and \
        'backbone.stages.2.3.mlp.pat_sp.pre_norm.running_var' in msg
    assert 'not mapped (1)' in msg and 'stages.0.blocks.0.extra.weight' in msg


def test_unknown_variant_is_named():
    state = random_reference_state('t0')
    state['patch_embed.proj.weight'] = torch.zeros(40, 3, 4, 4)
    with pytest.raises(ValueError, match='embed_dim=40'):
        detect_official_arch(state)


def run_tool(*args):
    return subprocess.run(
        [sys.executable, 'tools/convert_official.py', *map(str, args)],
        cwd=REPO, capture_output=True, text=True)


def test_tool_converts_and_never_overwrites(tmp_path):
    src, dst = tmp_path / 'ref.pth', tmp_path / 'out' / 'ours.pth'
    torch.save(dict(model=random_reference_state('t0')), src)
    done = run_tool(src, dst, '--arch', 't0')
    assert done.returncode == 0, done.stderr
    assert 'PartialNet-t0: 420 tensors' in done.stdout
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['arch'] == 't0' and len(ckpt['state_dict']) == 420
    before = dst.read_bytes()
    again = run_tool(src, dst)
    assert again.returncode != 0 and '--overwrite' in again.stderr
    assert dst.read_bytes() == before
    wrong = run_tool(src, tmp_path / 'x.pth', '--arch', 's')
    assert wrong.returncode != 0 and 'not the requested PartialNet-s' in \
        wrong.stderr and not (tmp_path / 'x.pth').exists()


def test_tool_refuses_pickled_objects_without_trust(tmp_path):
    import argparse
    src = tmp_path / 'ref.pth'
    torch.save(dict(model=random_reference_state('t0'),
                    args=argparse.Namespace(lr=1)), src)
    refused = run_tool(src, tmp_path / 'a.pth')
    assert refused.returncode != 0 and '--trust-pickle' in refused.stderr
    trusted = run_tool(src, tmp_path / 'a.pth', '--trust-pickle')
    assert trusted.returncode == 0, trusted.stderr
