# Semantic FPN with a PartialNet backbone on ADE20K, the recipe of the
# efficient-backbone papers (PoolFormer, EfficientFormer, RepViT): 512x512
# crops, 40k iterations of AdamW (lr 2e-4, weight decay 1e-4), poly decay
# (power 0.9) to 0, 8 GPUs x 4 images. Everything else is mmseg's own
# Semantic FPN and ADE20K base config.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
    './partialnet_dense.py',  # mmpartial, its runner, the backbone
]

crop_size = (512, 512)
num_classes = 150
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=_base_.partialnet_backbone,
    neck=dict(in_channels=[64, 128, 256, 512]),  # C, 2C, 4C, 8C
    decode_head=dict(num_classes=num_classes))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))
max_iters = 40000
param_scheduler = [
    dict(type='PolyLR', eta_min=0., power=0.9, by_epoch=False, begin=0,
         end=max_iters)
]
# The recipe's lr is for 8 GPUs x 4 images; `--auto-scale-lr` rescales it.
auto_scale_lr = dict(enable=False, base_batch_size=32)

train_dataloader = dict(
    batch_size=4,
    dataset=dict(type='mmpartial.CheckedADE20KDataset'))
val_dataloader = dict(dataset=dict(type='mmpartial.CheckedADE20KDataset'))
test_dataloader = val_dataloader
