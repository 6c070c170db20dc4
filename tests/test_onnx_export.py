"""tools/export_onnx.py: deploy-form ONNX with dynamic batch and image
size, checked in onnxruntime."""
import os.path as osp
import sys

import pytest

from deploy_helpers import (CLS_CONFIG, DET_CONFIG, load_tool,
                            save_train_checkpoint)
from mmpartial.utils.deploy import DeployError, reparameterize

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

TOL = 1e-4


@pytest.fixture(scope='module')
def tool():
    return load_tool('export_onnx')


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp('onnx')
    cls, det = str(root / 'cls.pth'), str(root / 'det.pth')
    save_train_checkpoint(CLS_CONFIG, cls)
    save_train_checkpoint(DET_CONFIG, det)
    return dict(cls=cls, det=det, root=root)


def run_tool(tool, *args):
    argv, sys.argv = sys.argv, ['export_onnx.py', *map(str, args)]
    try:
        tool.main()
    finally:
        sys.argv = argv


def assert_parity(results):
    for shape, diff, relative in results:
        assert diff < TOL and relative < TOL, (shape, diff, relative)


def test_classifier_logits_dynamic_batch_and_size(tool, checkpoints,
                                                  capsys):
    out = checkpoints['root'] / 'cls.onnx'
    run_tool(tool, CLS_CONFIG, checkpoints['cls'], out, '--img-size', 64, 64)
    printed = capsys.readouterr().out
    assert 'dynamic batch and image size' in printed
    assert printed.count('onnxruntime vs PyTorch') == 2

    import onnx
    graph = onnx.load(str(out)).graph
    dims = [d.dim_param or d.dim_value
            for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ['batch', 3, 'height', 'width']
    # One file, other batch sizes and image sizes than it was traced with.
    model = tool.build_deploy_model(CLS_CONFIG, checkpoints['cls'])
    assert model.backbone.deploy
    module, names = tool.export_target(model, backbone_only=False)
    assert names == ['logits']
    assert_parity(tool.check_onnx(module, str(out),
                                  [(1, 3, 64, 64), (3, 3, 96, 128),
                                   (2, 3, 160, 96)]))


def test_backbone_from_deploy_checkpoint(tool, checkpoints):
    deploy = str(checkpoints['root'] / 'det_deploy.pth')
    reparameterize(DET_CONFIG, checkpoints['det'], deploy)
    out = str(checkpoints['root'] / 'backbone.onnx')
    run_tool(tool, DET_CONFIG, deploy, out, '--backbone-only', '--deploy',
             '--img-size', 64, 96)
    model = tool.build_deploy_model(DET_CONFIG, deploy, deploy=True)
    module, names = tool.export_target(model, backbone_only=True)
    assert names == ['stage0', 'stage1', 'stage2', 'stage3']
    # 544 px: the last stage is 17x17, whose farthest positions (22.6
    # cells) fall into iRPE's logarithmic buckets; the exported graph
    # computes them for the runtime size.
    assert_parity(tool.check_onnx(module, out, [(2, 3, 96, 64),
                                                (1, 3, 544, 544)]))


def test_bad_requests(tool, checkpoints):
    root = checkpoints['root']
    with pytest.raises(DeployError, match='--backbone-only'):
        run_tool(tool, DET_CONFIG, checkpoints['det'], root / 'det.onnx')
    with pytest.raises(DeployError, match='train-form'):
        run_tool(tool, CLS_CONFIG, checkpoints['cls'], root / 'x.onnx',
                 '--deploy')
    existing = root / 'exists.onnx'
    existing.write_text('')
    with pytest.raises(DeployError, match='--overwrite'):
        run_tool(tool, CLS_CONFIG, checkpoints['cls'], existing)
    assert not osp.exists(root / 'det.onnx')
