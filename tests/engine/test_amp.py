"""AutocastOptimWrapper (mmpartial.engine.amp): bfloat16 where it is named,
float32 everywhere else."""
import pytest
import torch
from mmengine.runner import Runner
from torch import nn

import mmpartial.engine.amp as amp
from mmpartial.engine import AutocastOptimWrapper
from toy_detection import make_toy_set, toy_detection_cfg


class Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        self.blocks = nn.ModuleList([nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 1)])
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x = self.body(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean((2, 3)))


def record_dtypes(model):
    """The dtype of each module's output, refreshed at every forward."""
    seen = {}
    for name in ('body.0', 'blocks.0', 'blocks.1', 'head'):
        model.get_submodule(name).register_forward_hook(
            lambda m, a, out, name=name: seen.__setitem__(name, out.dtype))
    return seen


def wrapper_for(model, **kwargs):
    return AutocastOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)


@pytest.fixture
def native_bf16(monkeypatch):
    """Every CPU can autocast in bfloat16 (emulated where not native);
    the wrapper's choice to do so is tested apart."""
    monkeypatch.setattr(amp, 'cpu_has_native_bf16', lambda: True)


def test_named_modules_autocast_and_hand_back_float32(native_bf16):
    model = Net()
    seen = record_dtypes(model)
    wrapper = wrapper_for(model, modules=['body', 'blocks'])
    x = torch.randn(2, 3, 12, 12)
    with wrapper.optim_context(model):
        body_out = model.body(x)
        out = model(x)
    # Inside: the named modules compute in bfloat16 ...
    assert seen['body.0'] == seen['blocks.0'] == seen['blocks.1'] == \
        torch.bfloat16
    # ... and hand float32 to the rest, which stays in float32.
    assert body_out.dtype == torch.float32
    assert seen['head'] == torch.float32 and out.dtype == torch.float32
    out.sum().backward()
    assert all(p.grad.dtype == torch.float32 for p in model.parameters())
    # Outside the optimiser's context (validation, testing): float32.
    model(x)
    assert set(seen.values()) == {torch.float32}


def test_without_modules_the_whole_forward_autocasts(native_bf16):
    model = Net()
    seen = record_dtypes(model)
    with wrapper_for(model).optim_context(model):
        out = model(torch.randn(2, 3, 12, 12))
    assert set(seen.values()) == {torch.bfloat16}
    assert out.dtype == torch.bfloat16


def test_a_cpu_without_native_bf16_trains_in_float32(monkeypatch):
    monkeypatch.setattr(amp, 'cpu_has_native_bf16', lambda: False)
    logged = []
    monkeypatch.setattr(amp, 'print_log',
                        lambda message, **kwargs: logged.append(message))
    model = Net()
    seen = record_dtypes(model)
    wrapper = wrapper_for(model, modules=['body'])
    assert not wrapper.enabled
    assert len(logged) == 1 and 'this CPU has no native bfloat16' in \
        logged[0] and 'training in float32' in logged[0]
    with wrapper.optim_context(model):
        model(torch.randn(2, 3, 12, 12))
    assert set(seen.values()) == {torch.float32}


def test_bad_module_names_are_refused(native_bf16):
    model = Net()
    wrapper = wrapper_for(model, modules=['body', 'neck'])
    with pytest.raises(ValueError, match=r"no submodule 'neck'; its top-level "
                       r"modules are \['body', 'blocks', 'head'\]"):
        with wrapper.optim_context(model):
            pass
    with pytest.raises(ValueError, match='list of submodule names'):
        wrapper_for(model, modules='body')
    with pytest.raises(ValueError, match='"bfloat16" or "float16"'):
        wrapper_for(model, dtype='float64')


@pytest.mark.slow
def test_toy_detector_trains_in_mixed_precision(native_bf16, tmp_path):
    """The toy config's wrapper: the backbone computes in bfloat16, the
    RPN's and box head's predictions (decoded into boxes, NMS'ed) stay
    float32, and the losses are float32's within bfloat16's rounding."""
    cfg = toy_detection_cfg(make_toy_set(tmp_path / 'data'),
                            tmp_path / 'work')
    assert cfg.optim_wrapper.type == 'mmpartial.AutocastOptimWrapper'
    runner = Runner.from_cfg(cfg)
    model = runner.model.train()
    wrapper = runner.build_optim_wrapper(cfg.optim_wrapper)
    seen = {}
    for name in ('backbone.stages.0', 'neck', 'rpn_head.rpn_cls',
                 'roi_head.bbox_head.shared_convs.0',
                 'roi_head.bbox_head.fc_cls',
                 'roi_head.mask_head.conv_logits'):
        model.get_submodule(name).register_forward_hook(
            lambda m, a, out, name=name: seen.__setitem__(
                name, (out[0] if isinstance(out, tuple) else out).dtype))
    model.rpn_head.register_forward_pre_hook(
        lambda m, args: seen.__setitem__('rpn_head input', args[0][0].dtype))
    data = model.data_preprocessor(next(iter(runner.train_dataloader)), True)

    def losses(context):
        torch.manual_seed(0)  # the same RoIs sampled
        with context:
            parsed, _ = model.parse_losses(
                model._run_forward(data, mode='loss'))
        return parsed

    reference = losses(torch.enable_grad())
    assert set(seen.values()) == {torch.float32}
    mixed = losses(wrapper.optim_context(model))
    assert seen['backbone.stages.0'] == torch.bfloat16
    assert seen['roi_head.bbox_head.shared_convs.0'] == torch.bfloat16
    assert seen['neck'] == torch.bfloat16
    assert seen['rpn_head input'] == torch.float32  # handed back as float32
    for name in ('rpn_head.rpn_cls', 'roi_head.bbox_head.fc_cls',
                 'roi_head.mask_head.conv_logits'):
        assert seen[name] == torch.float32, name
    assert mixed.dtype == torch.float32
    assert torch.isfinite(mixed)
    assert abs(mixed.item() - reference.item()) < 0.05 * reference.item()
    mixed.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters()
               if p.grad is not None)


@pytest.mark.slow
def test_amp_on_a_cpu_autocasts_a_detectors_backbone_and_neck(monkeypatch):
    """``--amp`` on a CPU: the COCO detector's backbone and neck only (its
    NMS refuses bfloat16); the toy config keeps the modules it names; a
    classifier autocasts its whole forward."""
    from mmengine.config import Config

    from conftest import REPO
    from mmpartial.engine import enable_amp
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    configs = {name: Config.fromfile(f'{REPO}/configs/{name}.py')
               for name in ('mask-rcnn_partialnet-t0_coco',
                            'mask-rcnn_partialnet-t0_toy',
                            'partialnet-t0_in1k')}
    toy_modules = list(configs['mask-rcnn_partialnet-t0_toy']
                       .optim_wrapper.modules)
    for cfg in configs.values():
        enable_amp(cfg)
        assert cfg.optim_wrapper.type == 'mmpartial.AutocastOptimWrapper'
        assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert configs['mask-rcnn_partialnet-t0_coco'].optim_wrapper.modules == \
        ['backbone', 'neck']
    assert configs['mask-rcnn_partialnet-t0_toy'].optim_wrapper.modules == \
        toy_modules
    assert 'modules' not in configs['partialnet-t0_in1k'].optim_wrapper
