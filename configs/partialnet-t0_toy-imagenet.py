# PartialNet-T0 on the embedded toy ImageNet
# (`python tools/make_toy_imagenet.py data/toy_imagenet`): the T0 recipe of
# partialnet-t0_in1k.py shrunk to a few CPU minutes. 64 px images, trained
# at 56 px and switched to 64 px for the last epochs (the recipe's 192 ->
# 224 px), tested at resize 72 / center crop 64; fp32, no Mixup/CutMix.
_base_ = './partialnet-t0_in1k.py'

data_root = 'data/toy_imagenet'
num_classes = 4
model = dict(
    head=dict(num_classes=num_classes),
    train_cfg=dict(_delete_=True))
data_preprocessor = dict(num_classes=num_classes)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=56, crop_ratio_range=(0.35, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=72, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackInputs'),
]
# The standard folder layout: <data_root>/<split>/<class>/*.JPEG.
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    dataset=dict(_delete_=True, type='mmpartial.CheckedCustomDataset',
                 data_root=data_root,
                 data_prefix='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    dataset=dict(_delete_=True, type='mmpartial.CheckedCustomDataset',
                 data_root=data_root,
                 data_prefix='val', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

max_epochs = 12
optim_wrapper = dict(
    type='OptimWrapper',
    _delete_=True,
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.005))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1,
         end=max_epochs)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=4)
auto_scale_lr = dict(base_batch_size=32)
custom_hooks = [
    dict(type='mmpartial.TrainResolutionHook', switch_epoch=9, size=64)
]
default_hooks = dict(logger=dict(interval=5),
                     checkpoint=dict(interval=4, max_keep_ckpts=2))
