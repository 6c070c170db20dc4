import functools
import http.server
import subprocess
import sys
import threading

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO, VARIANTS, reference_layout
from mmpartial.apis.convert import (ConversionError,
                                    convert_official_checkpoint,
                                    convert_official_state_dict,
                                    detect_official_arch)
from mmpartial.models import PartialNet
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


@pytest.mark.slow
def test_tool_converts_and_never_overwrites(tmp_path):
    src, dst = tmp_path / 'ref.pth', tmp_path / 'out' / 'ours.pth'
    torch.save(dict(model=random_reference_state('t0')), src)
    done = run_tool(src, dst, '--arch', 't0')
    assert done.returncode == 0, done.stderr
    assert 'PartialNet-t0: 420 tensors' in done.stdout
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['arch'] == 't0' and len(ckpt['state_dict']) == 420
    # No local paths in what is written.
    assert ckpt['meta']['converted_from'] == 'ref.pth'
    assert not any(isinstance(value, str) and value.startswith('/')
                   for value in ckpt['meta'].values())
    before = dst.read_bytes()
    again = run_tool(src, dst)
    assert again.returncode != 0 and '--overwrite' in again.stderr
    assert dst.read_bytes() == before
    wrong = run_tool(src, tmp_path / 'x.pth', '--arch', 's')
    assert wrong.returncode != 0 and 'not the requested PartialNet-s' in \
        wrong.stderr and not (tmp_path / 'x.pth').exists()


@pytest.mark.slow
def test_tool_refuses_pickled_objects_without_trust(tmp_path):
    import argparse
    src = tmp_path / 'ref.pth'
    torch.save(dict(model=random_reference_state('t0'),
                    args=argparse.Namespace(lr=1)), src)
    refused = run_tool(src, tmp_path / 'a.pth')
    assert refused.returncode != 0 and '--trust-pickle' in refused.stderr
    trusted = run_tool(src, tmp_path / 'a.pth', '--trust-pickle')
    assert trusted.returncode == 0, trusted.stderr


@pytest.mark.slow
def test_tool_names_a_missing_or_truncated_source(tmp_path):
    missing = run_tool(tmp_path / 'nope.pth', tmp_path / 'a.pth')
    assert missing.returncode != 0 and 'Traceback' not in missing.stderr
    assert 'nope.pth' in missing.stderr and 'does not exist' in \
        missing.stderr
    src = tmp_path / 'ref.pth'
    torch.save(dict(model=random_reference_state('t0')), src)
    (tmp_path / 'cut.pth').write_bytes(src.read_bytes()[:1000])
    cut = run_tool(tmp_path / 'cut.pth', tmp_path / 'a.pth')
    assert cut.returncode != 0 and 'truncated' in cut.stderr
    assert not (tmp_path / 'a.pth').exists()


class QuietHandler(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args):
        pass


def test_source_is_read_through_mmengine_loaders(tmp_path, monkeypatch):
    """A URL reads like a local file (a local http.server serving it)."""
    # mmengine caches downloads under torch.hub's folder: a fresh one.
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    served = tmp_path / 'served'
    served.mkdir()
    torch.save(dict(state_dict=random_reference_state('t2')),
               served / 'ref.pth')
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f'http://127.0.0.1:{server.server_address[1]}/ref.pth'
        for trust_pickle in (False, True):
            dst = tmp_path / f'ours_{trust_pickle}.pth'
            state, meta = convert_official_checkpoint(
                url, str(dst), trust_pickle=trust_pickle)
            assert meta['arch'] == 't2' and meta['converted_from'] == \
                'ref.pth'
            assert dst.exists() and len(state) > 0
    finally:
        server.shutdown()
        server.server_close()
