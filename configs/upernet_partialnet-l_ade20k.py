_base_ = './_base_/upernet_partialnet_ade20k_160k.py'

model = dict(
    backbone=dict(arch='l'),
    decode_head=dict(in_channels=[160, 320, 640, 1280]),
    auxiliary_head=dict(in_channels=640))
