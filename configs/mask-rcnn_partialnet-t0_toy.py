# PartialNet-T0 Mask R-CNN on the embedded toy COCO set
# (`python tools/make_toy_coco.py data/toy_coco --train 1000`): the same model
# family as mask-rcnn_partialnet-t0_coco.py, shrunk to train in minutes on a
# CPU: small images, a 64-channel FPN and light heads (on a CPU the FPN's
# and RPN's 3x3 convolutions over the stride-4 level cost more than the T0
# backbone at 256 channels), fewer proposals, a short schedule. What was
# measured to matter (README, "What the demo reaches"):
# - anchors of 16-256 px (scale 4 on strides 4-64), not mmdet's 32-512: the
#   shapes are 6-110 px, and with 32-512 px anchors 12% of the training
#   boxes have no anchor of IoU >= 0.3, so the RPN never sees them;
# - RoIs pooled as mmdet does (finest_scale 56: every RoI under 112 px,
#   i.e. nearly all here, from P2, the stride-4 level): the masks need
#   that detail (segm AP +5 over pooling 28-112 px RoIs from P3/P4);
# - the backbone starts from a classifier pretrained on the same shapes
#   (configs/partialnet-t0_toy-shapes.py; tools/demo.sh hands it over and
#   keeps its BN statistics, norm_eval=True) and learns at 0.6x the
#   heads' rate: frozen it does far worse, and at 0.2x or 0.4x it names
#   half-hidden shapes less well (AP50 83.3 and 85.8 against 86.6);
# - updates per minute: the detector underfits (its AP on training images
#   is no higher than on val), so the cheaper steps of 64 channels, 300
#   proposals per level and 64 sampled RoIs (half positive) buy
#   iterations; two shared 3x3 convolutions before the box head's FC gave
#   4 AP more than mmdet's two FCs (one run each);
# - the heads' capacity where the errors were: half the AP50 lost is
#   shapes given the wrong class, so the box head's FC is 1024 wide and
#   its classification loss weighs 2; the mask head has mmdet's 4 convs
#   (at 64 channels). Together with the P2 pooling, one run each on the
#   64 val images: bbox AP 49.3 -> 52.9, AP50 73.5 -> 76.5, segm AP 40.1
#   -> 50.1, for 10-25% more time per step;
# - the step's cost on a CPU: RoIAlign in PyTorch (TorchRoIExtractor: the
#   same numbers as mmcv's, whose CPU kernel runs on one thread), the mask
#   head trained on at most 8 positive RoIs per image (CappedMaskRoIHead:
#   the AP of training it on all of them) and a fused AdamW make a step
#   0.6x as dear, and bfloat16 autocast in the convolutions and FCs
#   (below) another 0.78x, so 1575 iterations fit where 900 did.
_base_ = './mask-rcnn_partialnet-t0_coco.py'

data_root = 'data/toy_coco/'
classes = ('circle', 'square', 'triangle', 'star')
metainfo = dict(classes=classes,
                palette=[(220, 20, 60), (0, 128, 255), (0, 200, 0),
                         (255, 160, 0)])
image_scale = (320, 256)
width = 64  # FPN and head channels (COCO configs: 256)

model = dict(
    neck=dict(out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width,
                  anchor_generator=dict(scales=[4])),
    roi_head=dict(
        type='mmpartial.CappedMaskRoIHead',
        max_mask_rois_per_img=8,
        bbox_roi_extractor=dict(type='mmpartial.TorchRoIExtractor',
                                out_channels=width),
        bbox_head=dict(type='ConvFCBBoxHead', num_shared_convs=2,
                       num_shared_fcs=1, in_channels=width,
                       conv_out_channels=width, fc_out_channels=1024,
                       num_classes=len(classes),
                       loss_cls=dict(loss_weight=2.0)),
        mask_roi_extractor=dict(type='mmpartial.TorchRoIExtractor',
                                out_channels=width),
        mask_head=dict(in_channels=width, num_convs=4, conv_out_channels=64,
                       num_classes=len(classes))),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=300, max_per_img=300),
        rcnn=dict(sampler=dict(num=64, pos_fraction=0.5))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(max_per_img=50)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]
# 4 images per step: on a CPU a step of 4 costs 1.6x a step of 2, and at
# equal compute both reach the same AP (measured), so the larger batch
# sees 1.25x the images in the same time.
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# 7 epochs of the 1000-image set (900 with shapes; the empty images are
# skipped): 1575 iterations of 4 images.
max_epochs = 7
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
# bfloat16 where the time goes: the convolutions and FCs of the backbone,
# FPN, RPN and RoI heads (a step 0.78x as dear on this CPU, with
# avx512_bf16); box decoding, NMS, the predictors and the losses stay
# float32. A CPU without native bfloat16 trains all in float32.
# fused=True: PyTorch's one-kernel AdamW on CPU (its default loops over
# the parameters), 3% of a step here.
optim_wrapper = dict(type='mmpartial.AutocastOptimWrapper',
                     dtype='bfloat16',
                     modules=['backbone', 'neck', 'rpn_head.rpn_conv',
                              'roi_head.bbox_head.shared_convs',
                              'roi_head.bbox_head.shared_fcs',
                              'roi_head.mask_head.convs',
                              'roi_head.mask_head.upsample'],
                     optimizer=dict(lr=1e-3, weight_decay=1e-4, fused=True),
                     clip_grad=dict(max_norm=10, norm_type=2),
                     paramwise_cfg=dict(
                         custom_keys=dict(backbone=dict(lr_mult=0.6))))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True)
]
auto_scale_lr = dict(base_batch_size=4)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=1, max_keep_ckpts=2))
# A fixed seed, so that two runs of the demo train alike.
randomness = dict(seed=0)
