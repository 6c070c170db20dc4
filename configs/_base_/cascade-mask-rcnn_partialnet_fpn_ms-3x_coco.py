# Cascade Mask R-CNN + FPN with a PartialNet backbone, COCO 3x with
# multi-scale training as backbone papers report it (Swin, ConvNeXt):
# AdamW (lr 2e-4, 1e-4 for M and L as in the Mask R-CNN configs; weight
# decay 0.05), 36 epochs, lr steps at 27 and 33, 500 iterations of linear
# warmup, 8 GPUs x 2 images; training images resized to a random short side
# of 480-800 (long side <= 1333), or half the time cropped first
# (DETR-style: resize to 400/500/600, crop 384-600, then the random
# resize); testing at 1333x800. Everything else is mmdet's own Cascade
# Mask R-CNN base config (its standard 2-fc box heads).
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    './partialnet_dense.py',  # mmpartial, its runner, the backbone
]

model = dict(backbone=_base_.partialnet_backbone,
             neck=dict(in_channels=[64, 128, 256, 512]))  # C, 2C, 4C, 8C

# Short sides 480, 512, ..., 800 at a long side of at most 1333.
multi_scales = [(1333, short) for short in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=multi_scales,
                  keep_ratio=True)],
            [
                dict(type='RandomChoiceResize',
                     scales=[(1333, 400), (1333, 500), (1333, 600)],
                     keep_ratio=True),
                dict(type='RandomCrop', crop_type='absolute_range',
                     crop_size=(384, 600), allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=multi_scales,
                     keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs'),
]
# mmdet's CocoDataset plus checks (see the Mask R-CNN base config).
train_dataloader = dict(
    dataset=dict(type='mmpartial.CheckedCocoDataset',
                 pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(type='mmpartial.CheckedCocoDataset'))
test_dataloader = dict(dataset=dict(type='mmpartial.CheckedCocoDataset'))

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={'.bias_table': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[27, 33], gamma=0.1)
]
# The recipe's lr is for 8 GPUs x 2 images; `--auto-scale-lr` rescales it.
auto_scale_lr = dict(enable=False, base_batch_size=16)
