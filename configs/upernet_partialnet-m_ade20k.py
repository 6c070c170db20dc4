_base_ = './_base_/upernet_partialnet_ade20k_160k.py'

model = dict(
    backbone=dict(arch='m'),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
