"""tools/reparameterize.py and mmpartial.apis.reparameterize: a trained
classifier's or detector's checkpoint folded into the deploy form."""
import os.path as osp

import pytest
import torch
from mmengine.runner import load_checkpoint

from deploy_helpers import (CLS_CONFIG, DET_CONFIG, relative_diff, run_tool,
                            save_train_checkpoint)
from mmpartial.apis.deploy import (DeployError, build_partialnet_model,
                                   load_partialnet_config, reparameterize)
from mmpartial.models import PartialNet
from mmpartial.utils.checkpoint import CheckpointError

TOL = 1e-4


def assert_no_local_paths(meta):
    """A written checkpoint names its sources without local paths."""
    assert meta['config'] == osp.basename(CLS_CONFIG) or \
        meta['config'] == osp.basename(DET_CONFIG)
    assert meta['reparameterized_from'] == 'train.pth'
    for key, value in meta.items():
        assert not (isinstance(value, str) and value.startswith('/')), key


@pytest.fixture(scope='module')
def cls_checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('cls') / 'train.pth')
    model = save_train_checkpoint(CLS_CONFIG, path)
    return path, model


@pytest.mark.slow
def test_reparameterize_classifier(cls_checkpoint, tmp_path):
    path, model = cls_checkpoint
    out = str(tmp_path / 'deploy.pth')
    done = run_tool('reparameterize', CLS_CONFIG, path, out)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    # T0: 4 stem/merging BNs, 5 norms per PAT_ch block and 3 per PAT_sf
    # block minus the PAT_sp norms after the gate, plus 13 PAT_sp convs.
    assert 'folded 67 layers' in printed and '13 PAT_sp' in printed
    saved = torch.load(out, weights_only=True)
    assert saved['meta']['deploy'] is True
    assert saved['meta']['folded_layers'] == 67
    assert saved['meta']['dataset_meta']['classes'] == ['a', 'b', 'c', 'd']
    assert_no_local_paths(saved['meta'])

    # Loads strictly into the config with model.backbone.deploy=True, as
    # tools/test.py --cfg-options model.backbone.deploy=True does.
    cfg = load_partialnet_config(CLS_CONFIG, {'model.backbone.deploy': True})
    deployed = build_partialnet_model(cfg)
    load_checkpoint(deployed, out, map_location='cpu', strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x, mode='tensor')
        assert relative_diff(deployed(x, mode='tensor'), ref) < TOL
        # The original was not changed by the tool.
        assert not model.backbone.deploy


@pytest.mark.slow
def test_reparameterize_detector(tmp_path):
    path = str(tmp_path / 'train.pth')
    model = save_train_checkpoint(DET_CONFIG, path)
    out = str(tmp_path / 'deploy.pth')
    meta = reparameterize(DET_CONFIG, path, out)
    assert meta['folded_layers'] == 67 and meta['deploy']
    assert_no_local_paths(torch.load(out, weights_only=True)['meta'])
    cfg = load_partialnet_config(DET_CONFIG, {'model.backbone.deploy': True})
    deployed = build_partialnet_model(cfg)
    load_checkpoint(deployed, out, map_location='cpu', strict=True)
    assert deployed.backbone.deploy
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        assert relative_diff(deployed.extract_feat(x),
                             model.extract_feat(x)) < TOL


@pytest.mark.slow
def test_reparameterize_refuses_deployed_checkpoint(cls_checkpoint,
                                                    tmp_path):
    path, _ = cls_checkpoint
    out = str(tmp_path / 'deploy.pth')
    reparameterize(CLS_CONFIG, path, out)
    with pytest.raises(DeployError, match='already in deploy form'):
        reparameterize(CLS_CONFIG, out, str(tmp_path / 'again.pth'))
    # Even with its meta stripped, the folded layers give it away.
    state = torch.load(out, weights_only=True)['state_dict']
    bare = str(tmp_path / 'bare.pth')
    torch.save(state, bare)
    with pytest.raises(DeployError, match='already in deploy form'):
        reparameterize(CLS_CONFIG, bare, str(tmp_path / 'again.pth'))
    # An existing output is not overwritten unless asked.
    with pytest.raises(DeployError, match='--overwrite'):
        reparameterize(CLS_CONFIG, path, out)
    reparameterize(CLS_CONFIG, path, out, overwrite=True)
    assert not osp.exists(out + '.tmp')


def test_reparameterize_refuses_other_backbones(cls_checkpoint, tmp_path):
    path, _ = cls_checkpoint
    config = tmp_path / 'resnet.py'
    config.write_text(
        "_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'\n")
    with pytest.raises(DeployError, match='ResNet backbone'):
        reparameterize(str(config), path, str(tmp_path / 'out.pth'))
    assert not osp.exists(tmp_path / 'out.pth')


def test_reparameterize_refuses_mismatched_checkpoint(tmp_path):
    path = str(tmp_path / 't1.pth')
    torch.save(dict(state_dict={
        f'backbone.{k}': v for k, v in PartialNet('t1').state_dict().items()
    }), path)
    with pytest.raises(CheckpointError, match='does not fit'):
        reparameterize(CLS_CONFIG, path, str(tmp_path / 'out.pth'))
    assert not osp.exists(tmp_path / 'out.pth')


@pytest.mark.slow
def test_reparameterize_tool_fails_with_one_line(tmp_path):
    done = run_tool('reparameterize', CLS_CONFIG, tmp_path / 'missing.pth',
                    tmp_path / 'out.pth')
    assert done.returncode != 0 and 'Traceback' not in done.stderr
    assert 'missing.pth' in done.stderr and 'does not exist' in done.stderr
