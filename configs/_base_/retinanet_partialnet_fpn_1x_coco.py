# RetinaNet + FPN with a PartialNet backbone, COCO 1x as backbone papers
# report it (PVT, PoolFormer): AdamW (lr 1e-4, weight decay 1e-4), 12
# epochs, lr steps at 8 and 11, 500 iterations of linear warmup, 1333x800,
# 8 GPUs x 2 images. The FPN reads stages 2-4 (strides 8, 16, 32) and adds
# P6/P7 on top, as mmdet's RetinaNet does with a ResNet. Everything else is
# mmdet's own RetinaNet base config.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    './partialnet_dense.py',  # mmpartial, its runner, the backbone
]

model = dict(
    backbone=dict(_base_.partialnet_backbone, out_indices=(1, 2, 3)),
    # 2C, 4C, 8C; every input level gets an FPN level, P6 and P7 come from
    # the last input (add_extra_convs='on_input').
    neck=dict(in_channels=[128, 256, 512], start_level=0, num_outs=5))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True,
         milestones=[8, 11], gamma=0.1)
]
# The recipe's lr is for 8 GPUs x 2 images; `--auto-scale-lr` rescales it.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# mmdet's CocoDataset plus checks (see the Mask R-CNN base config).
train_dataloader = dict(dataset=dict(type='mmpartial.CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='mmpartial.CheckedCocoDataset'))
test_dataloader = dict(dataset=dict(type='mmpartial.CheckedCocoDataset'))
