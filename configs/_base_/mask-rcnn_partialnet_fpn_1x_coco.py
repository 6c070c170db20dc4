# Mask R-CNN + FPN with a PartialNet backbone, the paper's COCO 1x recipe:
# AdamW (lr 2e-4, weight decay 1e-4), 12 epochs, lr steps at 8 and 11,
# 500 iterations of linear warmup, 1333x800, 2 images/GPU on 8 GPUs.
# Everything else is mmdet's own Mask R-CNN base config.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    './partialnet_dense.py',  # mmpartial, its runner, the backbone
]

model = dict(backbone=_base_.partialnet_backbone,
             neck=dict(in_channels=[64, 128, 256, 512]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999),
                   weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True,
         milestones=[8, 11], gamma=0.1)
]
# The recipe's lr is for 8 GPUs x 2 images; `--auto-scale-lr` rescales it.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# mmdet's CocoDataset plus checks: bad annotations are skipped and reported,
# unreadable images replaced by other samples, a non-COCO json refused.
train_dataloader = dict(dataset=dict(type='mmpartial.CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='mmpartial.CheckedCocoDataset'))
test_dataloader = dict(dataset=dict(type='mmpartial.CheckedCocoDataset'))
