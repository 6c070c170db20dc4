# Mask R-CNN + FPN with PartialNet-T2, fine-tuned from the ImageNet-1K
# classifier of partialnet-t2_in1k.py with layer-wise learning-rate decay:
# the recipe of mask-rcnn_partialnet-t2_coco.py (AdamW at lr 2e-4, 12
# epochs), but the backbone's parameters learn the slower the nearer the
# input they are, so fine-tuning keeps more of what ImageNet taught the
# early layers. A starting point (the rate follows ConvNeXt's practice),
# not a measured recipe.
_base_ = './mask-rcnn_partialnet-t2_coco.py'

model = dict(backbone=dict(init_cfg=dict(
    # The file tools/train.py writes for partialnet-t2_in1k.py; another one
    # with --cfg-options model.backbone.init_cfg.checkpoint=PATH. A missing
    # file stops the run (decayed rates on random weights would only train
    # the early layers slowly).
    checkpoint='work_dirs/partialnet-t2_in1k/epoch_300.pth')))

optim_wrapper = dict(
    constructor='mmpartial.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        # lr x 0.8 ** (15 - depth): the stem (depth 0) at 0.035x, each of
        # T2's 14 blocks its own depth (a merging layer with the block it
        # feeds), the output norms, FPN and heads (depth 15) at 1x.
        layer_decay_rate=0.8))
