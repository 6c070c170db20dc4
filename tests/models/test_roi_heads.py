"""TorchRoIExtractor and CappedMaskRoIHead (mmpartial.models.roi_heads) in
the toy Mask R-CNN: mmdet's behaviour, less work."""
import pytest
import torch
from mmengine.runner import Runner

from mmpartial.registry import MODELS
from toy_detection import make_toy_set, toy_detection_cfg

pytest.importorskip('mmdet')  # the heads extend mmdet's


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    return make_toy_set(tmp_path_factory.mktemp('toy_coco'))


def extractor_cfg(type_name, out_size):
    return dict(type=type_name, out_channels=8, featmap_strides=[4, 8, 16],
                roi_layer=dict(type='RoIAlign', output_size=out_size,
                               sampling_ratio=0))


@pytest.mark.parametrize('out_size', [7, 14])
def test_torch_roi_extractor_equals_mmdet(out_size):
    """The same RoIs from the same levels, the same pooled values and
    gradients as mmdet's extractor with mmcv's RoIAlign (within float32
    rounding; tests/models/test_roi_align.py compares in float64)."""
    ours = MODELS.build(extractor_cfg('mmpartial.TorchRoIExtractor',
                                      out_size))
    ref = MODELS.build(extractor_cfg('mmdet.SingleRoIExtractor', out_size))
    assert type(ours) is type(ref)
    assert type(ours.roi_layers[0]).__module__.startswith('mmpartial')
    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 8, 64 // s, 80 // s, generator=gen,
                         requires_grad=True) for s in (1, 2, 4)]
    xy = torch.rand(60, 2, generator=gen) * torch.tensor([320., 256.])
    size = torch.rand(60, 2, generator=gen) * 200 + 4
    rois = torch.cat([torch.randint(0, 2, (60, 1), generator=gen).float(),
                      xy, xy + size], 1)
    out, expected = ours(feats, rois), ref(feats, rois)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    grad_out = torch.randn(out.shape, generator=gen)
    for a, b in zip(torch.autograd.grad(out, feats, grad_out),
                    torch.autograd.grad(expected, feats, grad_out)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_torch_roi_extractor_names_what_it_cannot_compute():
    cfg = extractor_cfg('mmpartial.TorchRoIExtractor', 7)
    cfg['roi_layer']['type'] = 'RoIPool'
    with pytest.raises(ValueError, match="'RoIAlign' only, got 'RoIPool'"):
        MODELS.build(cfg)


def toy_model_and_batch(toy_root, tmp_path, roi_head):
    cfg = toy_detection_cfg(toy_root, tmp_path)
    cfg.model.roi_head.pop('max_mask_rois_per_img', None)
    cfg.model.roi_head.update(roi_head)
    runner = Runner.from_cfg(cfg)
    batch = next(iter(runner.train_dataloader))
    return runner.model, runner.model.data_preprocessor(batch, True)


def mask_head_inputs(model):
    seen = []
    model.roi_head.mask_head.register_forward_hook(
        lambda module, args, out: seen.append(args[0].shape[0]))
    return seen


@pytest.mark.slow
def test_capped_mask_head_trains_on_at_most_the_cap(toy_root, tmp_path):
    model, data = toy_model_and_batch(
        toy_root, tmp_path, dict(type='mmpartial.CappedMaskRoIHead',
                                 max_mask_rois_per_img=2))
    seen = mask_head_inputs(model)
    torch.manual_seed(0)
    losses = model(**data, mode='loss')
    num_imgs = len(data['data_samples'])
    # the untrained RPN's proposals plus the ground truth give each image
    # more than 2 positives; the mask head got exactly 2 of each
    assert seen == [2 * num_imgs]
    assert torch.isfinite(losses['loss_mask'])


@pytest.mark.slow
def test_capped_mask_head_under_its_cap_is_mmdets(toy_root, tmp_path):
    """With a cap above the positives, every loss equals mmdet's
    StandardRoIHead's (same weights, same random stream)."""
    capped, data = toy_model_and_batch(
        toy_root, tmp_path / 'a', dict(type='mmpartial.CappedMaskRoIHead',
                                       max_mask_rois_per_img=10000))
    plain, _ = toy_model_and_batch(toy_root, tmp_path / 'b',
                                   dict(type='StandardRoIHead'))
    plain.load_state_dict(capped.state_dict())
    seen_capped, seen_plain = mask_head_inputs(capped), mask_head_inputs(
        plain)
    torch.manual_seed(0)
    ours = capped(**data, mode='loss')
    torch.manual_seed(0)
    ref = plain(**data, mode='loss')
    assert seen_capped == seen_plain and seen_plain[0] > 0
    assert ours.keys() == ref.keys()
    for key in ref:
        torch.testing.assert_close(ours[key], ref[key], rtol=0, atol=0)


@pytest.mark.parametrize('bad', [0, -3, 2.5, True, '16'])
def test_capped_mask_head_rejects_a_bad_cap(bad):
    with pytest.raises(ValueError, match='max_mask_rois_per_img must be a '
                       'positive integer'):
        MODELS.build(dict(type='mmpartial.CappedMaskRoIHead',
                          max_mask_rois_per_img=bad))


def test_capped_mask_head_needs_its_own_mask_extractor(toy_root, tmp_path):
    cfg = toy_detection_cfg(toy_root, tmp_path)
    head = dict(cfg.model.roi_head, mask_roi_extractor=None)
    with pytest.raises(ValueError, match='needs its own mask_roi_extractor'):
        MODELS.build(head)
