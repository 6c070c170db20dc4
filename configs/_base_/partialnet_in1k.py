# PartialNet on ImageNet-1K, the reference recipe (spec, "Reference training
# recipes"): 300 epochs of AdamW with a cosine schedule after 20 warmup
# epochs (from lr 1e-6, down to 1e-5), mixed precision, label smoothing 0.1,
# Mixup + CutMix, RandAugment, bicubic resizing, training at 192 px until
# epoch 280 and at 224 px after, testing at resize 248 / center crop 224,
# weight decay on every parameter.
# The variant files set the arch and what differs per variant.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmpartial'], allow_failed_imports=False)
# Guard rails for any tool that builds runners from the registry (this
# repository's tools/train.py, mmdet's and mmpretrain's own): CPU DDP over
# gloo, resume from the newest complete checkpoint, a checkpoint that does
# not fit the model is an error naming the file.
runner_type = 'mmpartial.CheckedRunner'

model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmpartial.PartialNet', arch='s'),
    neck=None,
    head=dict(
        type='mmpartial.PartialNetClsHead',
        num_classes=1000,
        in_channels=768,
        act_cfg=dict(type='ReLU'),
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                  mode='original')),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.3),
        dict(type='CutMix', alpha=1.0)
    ]))

# ImageNet as data/imagenet/{train,val}/<class>/*.JPEG; mmpretrain's
# annotation files (data/imagenet/meta/{train,val}.txt) are used if present.
train_size = 192  # TrainResolutionHook switches to 224 at epoch 280
rand_augment = dict(
    type='RandAugment',
    policies='timm_increasing',
    num_policies=2,
    total_level=10,
    magnitude_level=7,
    magnitude_std=0.5,
    hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=train_size, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    rand_augment,
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=248, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
# mmpretrain's ImageNet plus checks: missing or empty (class) folders are
# errors naming the folder, unreadable images are replaced by other samples.
# 32 GPUs x 128 images = the recipe's batch of 4096.
train_dataloader = dict(
    batch_size=128,
    dataset=dict(type='mmpartial.CheckedImageNet', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128,
    dataset=dict(type='mmpartial.CheckedImageNet', pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 300
warmup_epochs = 20
base_lr = 4e-3
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    # Weight decay on every parameter, norms, biases and the iRPE
    # position-bias table included, as the reference applies it (AdamW's
    # decoupled decay, no paramwise_cfg).
    optimizer=dict(type='AdamW', lr=base_lr, weight_decay=0.03, eps=1e-8,
                   betas=(0.9, 0.999)))
# The mmpretrain convention instead (no decay on norms, biases and the
# position-bias tables): in a config that inherits this one, set
#     optim_wrapper = dict(paramwise_cfg=_base_.mmpretrain_paramwise_cfg)
mmpretrain_paramwise_cfg = dict(
    norm_decay_mult=0.,
    bias_decay_mult=0.,
    custom_keys={'.bias_table': dict(decay_mult=0.)})
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / base_lr, by_epoch=True,
         begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True,
         begin=warmup_epochs, end=max_epochs)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
auto_scale_lr = dict(base_batch_size=4096)
custom_hooks = [
    dict(type='mmpartial.TrainResolutionHook', switch_epoch=280, size=224)
]
