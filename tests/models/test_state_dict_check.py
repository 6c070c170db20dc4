"""The backbone refuses tensors of its own that do not fit it, however they
arrive; heads that differ on purpose load as mmengine allows."""
import logging
import socket

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.runner.checkpoint import load_state_dict

from mmpartial.models import PartialNet
from mmpartial.utils.checkpoint import CheckpointError


class Detector(nn.Module):
    """A backbone under ``backbone.`` and a head of its own, as in mmdet."""

    def __init__(self, arch, num_classes=4):
        super().__init__()
        self.backbone = PartialNet(arch, out_indices=(0, 1, 2, 3),
                                   out_norm=True)
        self.head = nn.Linear(8, num_classes)


def _state(model):
    return {key: value.clone() for key, value in model.state_dict().items()}


def test_another_variant_is_refused_naming_keys_shapes_and_variant():
    t0 = _state(Detector('t0'))
    model = Detector('t2')
    before = _state(model)
    with pytest.raises(CheckpointError) as info:
        model.load_state_dict(t0, strict=False)
    message = str(info.value)
    assert 'PartialNet-T2 backbone' in message
    assert 'checkpoint of PartialNet-T0' in message
    # The stem: T0 has 32 channels, T2 64.
    assert ("backbone.downsample_layers.0.conv.weight: checkpoint "
            "(32, 3, 4, 4), model (64, 3, 4, 4)") in message
    assert "under 'backbone.'" in message
    # Nothing of the backbone was overwritten.
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_refused_through_mmengine_load_state_dict():
    # mmengine's loader (load_from, resume, init_cfg) only warns about
    # shape mismatches; the backbone's own hook still refuses them.
    t2 = _state(PartialNet('t2'))
    with pytest.raises(CheckpointError, match='PartialNet-T2'):
        load_state_dict(PartialNet('t0'), t2, strict=False)


def test_extra_blocks_of_another_depth_are_refused():
    # Same width, other depths: no shape differs, but stage 3 has 4 blocks
    # in the checkpoint and 2 in the model.
    deep = PartialNet(dict(embed_dim=32, depths=[1, 2, 8, 4]))
    with pytest.raises(CheckpointError) as info:
        PartialNet('t0').load_state_dict(_state(deep), strict=False)
    assert 'blocks the model lacks (stages.3.2, stages.3.3)' in str(info.value)
    assert 'embed_dim=32, depths=[1, 2, 8, 4]' in str(info.value)


def test_a_head_for_other_classes_still_loads():
    source = Detector('t0', num_classes=80)
    model = Detector('t0', num_classes=4)
    errors = []
    logger = logging.getLogger('test_a_head_for_other_classes')
    handler = logging.Handler()
    handler.emit = lambda record: errors.append(record.getMessage())
    logger.addHandler(handler)
    # mmengine reports the head's mismatch and carries on.
    load_state_dict(model, _state(source), strict=False, logger=logger)
    assert any('head.weight' in error for error in errors)
    assert not any('backbone.' in error for error in errors)
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key


def test_same_variant_round_trip_is_exact():
    source, model = PartialNet('t1'), PartialNet('t1')
    model.load_state_dict(source.state_dict())
    x = torch.randn(1, 3, 64, 64)
    source.eval(), model.eval()
    assert torch.equal(source(x)[0], model(x)[0])


@pytest.fixture
def gloo_group():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_refused_under_ddp(gloo_group):
    model = nn.parallel.DistributedDataParallel(Detector('t2'))
    t0 = {f'module.{key}': value for key, value in _state(Detector('t0'))
          .items()}
    with pytest.raises(CheckpointError, match="under 'module.backbone.'"):
        model.load_state_dict(t0, strict=False)
