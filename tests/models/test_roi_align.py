"""mmpartial's PyTorch RoIAlign against mmcv's, and its use in mmdet."""
import pytest
import torch

from mmpartial.models.layers.roi_align import RoIAlign, roi_align

mmcv_ops = pytest.importorskip('mmcv.ops')


def random_rois(num, num_imgs, height, width, seed=0):
    """Boxes of 2-300 px (skewed small), some partly or wholly outside the
    image, on random images of the batch."""
    gen = torch.Generator().manual_seed(seed)
    rand = lambda: torch.rand(num, generator=gen, dtype=torch.float64)  # noqa
    batch = torch.randint(0, num_imgs, (num, ), generator=gen).double()
    cx, cy = rand() * (width + 80) - 40, rand() * (height + 80) - 40
    w = rand()**2 * 298 + 2
    h = w * (0.3 + 1.4 * rand())
    return torch.stack([batch, cx - w / 2, cy - h / 2, cx + w / 2,
                        cy + h / 2], 1)


@pytest.mark.parametrize('stride', [4, 8, 32])
@pytest.mark.parametrize('output_size', [(7, 7), (14, 14), (3, 5)])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('aligned', [True, False])
def test_roi_align_equals_mmcv(stride, output_size, sampling_ratio, aligned):
    """Values and gradients of mmcv's RoIAlign (its float32 kernel against
    this one in float64: the difference is mmcv's rounding)."""
    height, width = 256 // stride, 320 // stride
    gen = torch.Generator().manual_seed(stride)
    feats = torch.randn(3, 6, height, width, generator=gen,
                        dtype=torch.float64, requires_grad=True)
    rois = random_rois(200, 3, 256, 320, seed=stride)
    args = (output_size, 1 / stride, sampling_ratio)
    ref = mmcv_ops.roi_align(feats.float(), rois.float(), *args, 'avg',
                             aligned)
    ours = roi_align(feats, rois, *args, aligned)
    assert ours.shape == (200, 6) + output_size
    grad_out = torch.randn(ours.shape, generator=gen, dtype=torch.float64)
    ref_grad, = torch.autograd.grad(ref, feats, grad_out.float())
    our_grad, = torch.autograd.grad(ours, feats, grad_out)
    for a, b in ((ours, ref), (our_grad, ref_grad)):
        assert b.abs().max() > 0.1  # something to compare
        err = (a - b.double()).abs().max() / b.abs().max()
        assert err < 1e-5, err


def test_roi_align_module_matches_mmcv_module():
    """The module takes mmcv's ``RoIAlign`` arguments and gives its output
    in float32, the training dtype, for RoIs on several images (within
    float32 rounding of sums over up to a few hundred samples)."""
    ours = RoIAlign(7, spatial_scale=0.25, sampling_ratio=0)
    ref = mmcv_ops.RoIAlign(7, spatial_scale=0.25, sampling_ratio=0)
    feats = torch.randn(2, 8, 64, 80)
    rois = random_rois(50, 2, 256, 320).float()
    torch.testing.assert_close(ours(feats, rois), ref(feats, rois),
                               rtol=1e-4, atol=1e-4)
    assert ours.output_size == (7, 7) and ours.pool_mode == 'avg'
    assert ours(feats, rois[:0]).shape == (0, 8, 7, 7)


def test_roi_align_rejects_what_it_does_not_compute():
    with pytest.raises(ValueError, match="pool_mode='avg' only, got 'max'"):
        RoIAlign(7, pool_mode='max')
    with pytest.raises(ValueError, match='use_torchvision'):
        RoIAlign(7, use_torchvision=True)
