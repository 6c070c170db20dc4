_base_ = './_base_/upernet_partialnet_ade20k_160k.py'

model = dict(
    backbone=dict(arch='t2'),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
