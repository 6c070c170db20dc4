# UperNet with PartialNet-T2 on ADE20K, fine-tuned from the ImageNet-1K
# classifier of partialnet-t2_in1k.py with layer-wise learning-rate decay:
# the recipe of upernet_partialnet-t2_ade20k.py (AdamW at lr 6e-5, 160k
# iterations, no weight decay on norms and position-bias tables), but the
# backbone's parameters learn the slower the nearer the input they are. A
# starting point (the rate follows ConvNeXt's practice), not a measured
# recipe.
_base_ = './upernet_partialnet-t2_ade20k.py'

model = dict(backbone=dict(init_cfg=dict(
    # The file tools/train.py writes for partialnet-t2_in1k.py; another one
    # with --cfg-options model.backbone.init_cfg.checkpoint=PATH. A missing
    # file stops the run (decayed rates on random weights would only train
    # the early layers slowly).
    checkpoint='work_dirs/partialnet-t2_in1k/epoch_300.pth')))

# Merged into the base's optim_wrapper: its norm_decay_mult and custom_keys
# still apply.
optim_wrapper = dict(
    constructor='mmpartial.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        # lr x 0.8 ** (15 - depth): the stem (depth 0) at 0.035x, each of
        # T2's 14 blocks its own depth (a merging layer with the block it
        # feeds), the output norms and both heads (depth 15) at 1x.
        layer_decay_rate=0.8))
