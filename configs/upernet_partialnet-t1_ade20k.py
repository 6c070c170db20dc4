_base_ = './_base_/upernet_partialnet_ade20k_160k.py'

model = dict(
    backbone=dict(arch='t1'),
    decode_head=dict(in_channels=[48, 96, 192, 384]),
    auxiliary_head=dict(in_channels=192))
