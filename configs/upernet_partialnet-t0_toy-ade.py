# PartialNet-T0 UperNet on the embedded toy ADE20K set
# (`python tools/make_toy_ade.py data/toy_ade`): the model family of
# upernet_partialnet-t0_ade20k.py shrunk to train in minutes on a CPU:
# 128x128 crops of ~160x128 images, 8 per batch, a 64-channel UperNet head
# (ADE20K configs: 512), BN instead of SyncBN, 800 iterations at a higher
# lr, no dropout in the backbone.
_base_ = './upernet_partialnet-t0_ade20k.py'

data_root = 'data/toy_ade'
# Label-map values 1-5 (0 is unlabeled, reduce_zero_label ignores it).
metainfo = dict(
    classes=('background', 'circle', 'square', 'triangle', 'star'),
    palette=[(120, 120, 120), (220, 20, 60), (0, 128, 255), (0, 200, 0),
             (255, 160, 0)])
num_classes = 5
crop_size = (128, 128)
image_scale = (160, 128)  # the toy set's size (tools/make_toy_ade.py)
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(attn_drop_rate=0., proj_drop_rate=0.),
    decode_head=dict(channels=64, num_classes=num_classes,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(channels=32, num_classes=num_classes,
                        norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=image_scale, ratio_range=(0.75, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# mmpartial.CheckedSegDataset: mmseg's BaseSegDataset with the checks of
# CheckedADE20KDataset, for classes other than ADE20K's; scan_labels reads
# every label map once when the dataset is built (cheap for this set).
dataset = dict(
    _delete_=True,
    type='mmpartial.CheckedSegDataset',
    data_root=data_root,
    metainfo=metainfo,
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=True,
    scan_labels=True)
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        **dataset,
        data_prefix=dict(img_path='images/training',
                         seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    dataset=dict(
        **dataset,
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 800
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=50),
    dict(type='PolyLR', eta_min=0., power=1.0, by_epoch=False, begin=50,
         end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
auto_scale_lr = dict(base_batch_size=8)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
