"""PartialNet.get_layer_depth: mmpretrain's layer-depth convention (stem 0,
one depth per block, merging layers with the block they feed, the rest
last; num_layers = number of blocks + 2)."""
import pytest

from mmpartial.models import PartialNet


def expected_depths(model):
    """{parameter name: depth}, from the modules that hold the parameters
    (not from their names)."""
    depths = [len(stage) for stage in model.stages]
    last = sum(depths) + 1
    by_id = {}
    for i, (merge, stage) in enumerate(zip(model.downsample_layers,
                                           model.stages)):
        first = sum(depths[:i]) + 1
        for param in merge.parameters():
            by_id[id(param)] = first if i else 0
        for j, block in enumerate(stage):
            for param in block.parameters():
                by_id[id(param)] = first + j
    return {name: by_id.get(id(param), last)
            for name, param in model.named_parameters()}


@pytest.mark.parametrize('arch', ['t0', 't2', dict(embed_dim=16,
                                                   depths=[1, 1, 3, 1])])
def test_every_parameter_gets_the_convention_depth(arch):
    model = PartialNet(arch, out_indices=(0, 1, 2, 3), out_norm=True)
    num_blocks = sum(len(stage) for stage in model.stages)
    expected = expected_depths(model)
    got = {}
    for name in expected:
        depth, num_layers = model.get_layer_depth(name)
        assert num_layers == num_blocks + 2, name
        got[name] = depth
    assert got == expected
    # The stem alone at 0; each block its own depth, 1 to num_blocks; the
    # output norms last.
    assert {name.split('.')[1] for name, d in got.items() if d == 0} == {'0'}
    block_depths = {d for name, d in got.items() if name.startswith('stages')}
    assert block_depths == set(range(1, num_blocks + 1))
    assert {d for name, d in got.items() if name.startswith('norm')} == \
        {num_blocks + 1}


def test_merging_layer_shares_the_depth_of_the_next_block():
    model = PartialNet('t2')  # depths 2, 2, 6, 4: 14 blocks, 16 depths
    names = dict(model.named_parameters())
    for stage, first in ((1, 3), (2, 5), (3, 11)):
        for name in (f'downsample_layers.{stage}.conv.weight',
                     f'downsample_layers.{stage}.bn.bias',
                     f'stages.{stage}.0.mlp.fc2.weight'):
            assert name in names
            assert model.get_layer_depth(name) == (first, 16)
        assert model.get_layer_depth(
            f'stages.{stage}.1.mlp.fc2.weight') == (first + 1, 16)
    assert model.get_layer_depth('downsample_layers.0.conv.weight') == (0, 16)
    assert model.get_layer_depth('stages.0.0.mlp.fc2.weight') == (1, 16)
    assert model.get_layer_depth('stages.3.3.mlp.fc2.weight') == (14, 16)


def test_prefix_and_names_outside_the_backbone():
    model = PartialNet('t0')  # 13 blocks: 15 depths
    assert model.get_layer_depth('backbone.downsample_layers.0.conv.weight',
                                 prefix='backbone.') == (0, 15)
    assert model.get_layer_depth('backbone.stages.2.7.mlp.fc1.weight',
                                 prefix='backbone.') == (11, 15)
    for outside in ('head.fc.weight', 'neck.lateral_convs.0.conv.weight',
                    'decode_head.conv_seg.bias', 'roi_head.bbox_head.fc'):
        assert model.get_layer_depth(outside, prefix='backbone.') == (14, 15)
