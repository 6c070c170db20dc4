# What every detection and segmentation base config of this project shares
# (listed in their _base_ beside mmdet's or mmseg's files): mmpartial
# imported, its guard-rail runner, and the PartialNet backbone that replaces
# the base model's ResNet (`backbone=_base_.partialnet_backbone`).
custom_imports = dict(imports=['mmpartial'], allow_failed_imports=False)
# Guard rails for any tool that builds runners from the registry (this
# repository's tools/train.py, mmdet's and mmseg's own): CPU DDP over gloo,
# resume from the newest complete checkpoint, a checkpoint that does not
# fit the model is an error naming the file.
runner_type = 'mmpartial.CheckedRunner'

partialnet_backbone = dict(
    _delete_=True,  # nothing of the base model's ResNet carries over
    type='mmpartial.PartialNet',
    arch='t2',
    out_indices=(0, 1, 2, 3),  # C, 2C, 4C, 8C channels (T2: 64-512)
    # A BN on every stage output, as the reference detection model has.
    out_norm=True,
    frozen_stages=0,
    norm_eval=False,
    # Set checkpoint to an ImageNet checkpoint of the same variant, e.g.
    # --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/\
    # partialnet-t2_in1k/epoch_300.pth; None trains from scratch.
    init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.'))
