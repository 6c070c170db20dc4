# UperNet with a PartialNet backbone on ADE20K, the recipe backbone papers
# report (Swin, ConvNeXt, InceptionNeXt): 512x512 crops, 160k iterations of
# AdamW (lr 6e-5, betas (0.9, 0.999), weight decay 0.01, none on norms and
# the attention's position-bias table), 1500 iterations of linear warmup,
# then poly decay (power 1.0) to 0; 8 GPUs x 2 images; an auxiliary FCN head
# on stage 3. Everything else is mmseg's own UperNet and ADE20K base config.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
    './partialnet_dense.py',  # mmpartial, its runner, the backbone
]

crop_size = (512, 512)
num_classes = 150
model = dict(
    # mmseg's base model names an ImageNet ResNet here; the backbone's own
    # init_cfg says what it starts from.
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=_base_.partialnet_backbone,
    # C, 2C, 4C, 8C channels; the auxiliary head reads stage 3 (4C).
    decode_head=dict(in_channels=[64, 128, 256, 512],
                     num_classes=num_classes),
    auxiliary_head=dict(in_channels=256, num_classes=num_classes))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999),
                   weight_decay=0.01),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={'.bias_table': dict(decay_mult=0.)}))
max_iters = 160000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(type='PolyLR', eta_min=0., power=1.0, by_epoch=False, begin=1500,
         end=max_iters)
]
# The recipe's lr is for 8 GPUs x 2 images; `--auto-scale-lr` rescales it.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# mmseg's ADE20KDataset plus checks: a label map with values that are not
# classes is an error naming the file, a palette that does not fit the
# classes is refused.
train_dataloader = dict(
    batch_size=2,
    dataset=dict(type='mmpartial.CheckedADE20KDataset'))
val_dataloader = dict(dataset=dict(type='mmpartial.CheckedADE20KDataset'))
test_dataloader = val_dataloader
