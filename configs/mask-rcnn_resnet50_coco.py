# mmdet's Mask R-CNN R-50-FPN 1x (SGD lr 0.02 at 16 images, 12 epochs, the
# backbone from torchvision's ImageNet ResNet-50): the baseline of
# mask-rcnn_pat-resnet50_coco.py, which differs from it in the backbone only.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmpartial'], allow_failed_imports=False)
# The project's guard rails, for both models alike: its runner, and mmdet's
# CocoDataset with bad annotations skipped and reported.
runner_type = 'mmpartial.CheckedRunner'
train_dataloader = dict(dataset=dict(type='mmpartial.CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='mmpartial.CheckedCocoDataset'))
test_dataloader = dict(dataset=dict(type='mmpartial.CheckedCocoDataset'))
