import copy

import torch
from mmdet.models.roi_heads import StandardRoIHead

# The per-positive fields of mmdet's SamplingResult that the mask head's
# targets and loss read.
_POSITIVE_FIELDS = ('pos_inds', 'pos_priors', 'pos_is_gt',
                    'pos_assigned_gt_inds', 'pos_gt_labels', 'pos_gt_bboxes')


class CappedMaskRoIHead(StandardRoIHead):
    """mmdet's ``StandardRoIHead`` whose mask head trains on at most
    ``max_mask_rois_per_img`` positive RoIs of each image.

    mmdet trains the mask head on every positive RoI the sampler kept: with
    64 sampled RoIs, half positive, that is up to 32 per image, several per
    object and nearly alike. On a CPU the mask head's four 3x3 convolutions
    over 14x14 RoIs were the largest cost of a step. A random subset of
    the positives (the box head still sees all of them) keeps the mask
    loss's examples varied for a fraction of the cost. Inference is
    mmdet's.

    Args:
        max_mask_rois_per_img (int): Most positive RoIs per image that the
            mask head trains on.
        **kwargs: Arguments of ``StandardRoIHead``.
    """

    def __init__(self, max_mask_rois_per_img=16, **kwargs):
        if isinstance(max_mask_rois_per_img, bool) or not isinstance(
                max_mask_rois_per_img, int) or max_mask_rois_per_img < 1:
            raise ValueError('max_mask_rois_per_img must be a positive '
                             f'integer, got {max_mask_rois_per_img!r}')
        super().__init__(**kwargs)
        if self.with_mask and self.share_roi_extractor:
            # the shared path selects positives from the box RoIs' features
            raise ValueError('CappedMaskRoIHead needs its own '
                             'mask_roi_extractor; got none (mmdet would '
                             "share the box head's)")
        self.max_mask_rois_per_img = max_mask_rois_per_img

    def mask_loss(self, x, sampling_results, bbox_feats, batch_gt_instances):
        capped = [self._cap_positives(res) for res in sampling_results]
        return super().mask_loss(x, capped, bbox_feats, batch_gt_instances)

    def _cap_positives(self, result):
        """A copy of ``result`` with a random subset of its positives."""
        num_pos = result.pos_priors.shape[0]
        if num_pos <= self.max_mask_rois_per_img:
            return result
        keep = torch.randperm(num_pos, device=result.pos_priors.device)
        keep = keep[:self.max_mask_rois_per_img]
        capped = copy.copy(result)
        for field in _POSITIVE_FIELDS:
            setattr(capped, field, getattr(result, field)[keep])
        capped.num_pos = keep.numel()
        return capped
