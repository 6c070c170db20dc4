# PartialNet-T2 classifier fine-tuned from a pretrained backbone (by default
# the ImageNet-1K classifier of partialnet-t2_in1k.py; one pretrained on
# more data, or at another resolution, the same way) with layer-wise
# learning-rate decay, on data in the ImageNet layout (for other classes,
# set model.head.num_classes and the data root). The fine-tuning recipe
# follows ConvNeXt's (its paper, appendix: 30 epochs of AdamW at lr 5e-5 for
# a batch of 512, cosine decay, no warmup, weight decay 1e-8, no Mixup or
# CutMix); the rest is partialnet-t2_in1k.py's. A starting point, not a
# measured recipe.
_base_ = './partialnet-t2_in1k.py'

model = dict(
    backbone=dict(init_cfg=dict(
        type='Pretrained',
        # The file tools/train.py writes for partialnet-t2_in1k.py; another
        # one with --cfg-options model.backbone.init_cfg.checkpoint=PATH. A
        # missing file stops the run. Only backbone.* is loaded: the head
        # starts fresh.
        checkpoint='work_dirs/partialnet-t2_in1k/epoch_300.pth',
        prefix='backbone.')),
    train_cfg=dict(_delete_=True))  # no Mixup / CutMix

# 8 GPUs x 64 images = the recipe's batch of 512, at 224 px throughout (the
# base trains at 192 px until its resolution switch at epoch 280).
train_dataloader = dict(
    batch_size=64,
    dataset=dict(pipeline=[
        dict(step, scale=224) if step.type == 'RandomResizedCrop' else step
        for step in _base_.train_dataloader.dataset.pipeline
    ]))
custom_hooks = []

max_epochs = 30
optim_wrapper = dict(
    optimizer=dict(lr=5e-5, weight_decay=1e-8),
    constructor='mmpartial.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        # lr x 0.8 ** (15 - depth): the stem (depth 0) at 0.035x, each of
        # T2's 14 blocks its own depth (a merging layer with the block it
        # feeds), the head (depth 15) at 1x.
        layer_decay_rate=0.8))
param_scheduler = [
    # eta_min_ratio, not eta_min: an absolute floor would be above the
    # decayed lr of the early layers and raise it instead of lowering it.
    dict(type='CosineAnnealingLR', eta_min_ratio=0.01, by_epoch=True,
         begin=0, end=max_epochs, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=512)
