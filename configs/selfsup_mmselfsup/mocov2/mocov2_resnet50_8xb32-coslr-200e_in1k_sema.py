"""MoCo v2, ResNet-50, SGD, 200 epochs (batch 8 x 32): Switch EMA (SEMA).

The standard method plus ``SwitchEMAHook(teacher='auto')``: the model's own
teacher ``encoder_k`` is the EMA, with the model's schedule: ``momentum=0.999``
(mmselfsup's convention: a decay; the model uses ``1 - momentum`` = 0.001 as
mmengine's weight of the new weights). At the end of every epoch it is copied
into the online backbone and neck; the hook's ``momentum`` is unused. The
variants: ``../README.md``.
"""
_base_ = './mocov2_resnet50_8xb32-coslr-200e_in1k_ema.py'

custom_hooks = [dict(type='SwitchEMAHook', teacher='auto')]
