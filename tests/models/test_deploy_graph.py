"""The exported deploy graph: channels-first throughout (no layout
transposes outside the attention), the iRPE buckets folded, and the same
outputs as PyTorch in onnxruntime at sizes other than the traced one."""
import collections

import pytest
import torch

from deploy_helpers import randomize_norms, relative_diff
from mmpartial.models import PartialNet
from mmpartial.models.layers import EuclideanRelPosBias, euclidean_buckets

TOL = 1e-4
SMALL = dict(embed_dim=16, depths=[1, 2, 1, 1], use_pat_sp=True,
             act_cfg=dict(type='GELU'))


def deploy_backbone():
    torch.manual_seed(0)
    train = PartialNet(SMALL, out_indices=(0, 1, 2, 3))
    train.init_weights()
    randomize_norms(train)
    deployed = PartialNet(SMALL, out_indices=(0, 1, 2, 3))
    deployed.load_state_dict(train.state_dict())
    deployed.switch_to_deploy()
    return train.eval(), deployed.eval()


@pytest.mark.slow
def test_deploy_graph_is_channels_first_and_matches_pytorch(tmp_path):
    onnx = pytest.importorskip('onnx')
    ort = pytest.importorskip('onnxruntime')
    from mmpartial.apis.export import write_onnx
    train, deployed = deploy_backbone()
    names = [f'output{i}' for i in range(4)]
    path = str(tmp_path / 'deploy.onnx')
    write_onnx(deployed, path, (1, 3, 64, 64), names)

    nodes = onnx.load(path).graph.node
    ops = collections.Counter(node.op_type for node in nodes)
    # Layout changes only where the attention needs (B, N, C) tokens: in
    # PAT_sf, the token mixer of stage 4.
    stray = [node.name for node in nodes if node.op_type == 'Transpose'
             and '/stages.3/' not in node.name]
    assert ops['Transpose'] > 0 and not stray, stray
    # The bucket function (its logarithm) is folded into a constant.
    assert ops['Log'] == 0, ops

    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    # Other batch sizes and image sizes than traced, a non-square one too.
    for shape in ((2, 3, 64, 64), (1, 3, 96, 160)):
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = deployed(x)
            reference = train(x)
        got = session.run(None, {'input': x.numpy()})
        got = tuple(torch.from_numpy(out) for out in got)
        assert relative_diff(got, expected) < TOL, shape
        assert relative_diff(got, reference) < TOL, shape


@pytest.mark.parametrize('height,width', [(7, 7), (3, 200), (170, 2)])
def test_traced_irpe_bias_equals_the_buckets(height, width):
    """The deploy form's traced bias (per-distance constant, distances
    clamped at ``max_distance``) is the bucket gather, also where the map
    is far larger than the clamp."""
    torch.manual_seed(0)
    rel = EuclideanRelPosBias(2, deploy=True)
    with torch.no_grad():
        rel.bias_table.uniform_(-1, 1)
    assert max(height, width) > rel.max_distance or height == 7

    class Bias(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rel = rel

        def forward(self, x):
            return self.rel(x.shape[2], x.shape[3])

    with torch.no_grad():
        traced = torch.jit.trace(Bias(), torch.zeros(1, 1, height, width),
                                 check_trace=False)
    expected = rel.bias_table[:, euclidean_buckets(height, width)]
    assert torch.equal(traced(torch.zeros(1, 1, height, width)), expected)
    assert torch.equal(rel(height, width), expected)  # the eager cache
