_base_ = './_base_/upernet_partialnet_ade20k_160k.py'

model = dict(
    backbone=dict(arch='s'),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
