# mmpretrain's ResNet-50 on ImageNet-1K, its own recipe (resnet50_8xb32_in1k:
# SGD lr 0.1 at batch 256, 100 epochs, steps at 30/60/90): the baseline of
# pat-resnet50_in1k.py, which differs from it in the backbone only.
_base_ = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'
custom_imports = dict(imports=['mmpartial'], allow_failed_imports=False)
# The project's guard rails (CPU DDP over gloo, resume from the newest
# complete checkpoint, a misfit checkpoint named), for both models alike.
runner_type = 'mmpartial.CheckedRunner'
