"""MoCo v2, ResNet-50, SGD, 200 epochs (batch 8 x 32): "Basic", without a
momentum teacher.

The paper's "Basic" (Table 4): ``CopyTeacherHook`` (sema_mm.selfsup) makes the
teacher ``encoder_k`` an exact copy of the online backbone and neck at every
update, the gradient still stopped; how, and why no momentum value can say it:
``../README.md``.
"""
_base_ = './mocov2_resnet50_8xb32-coslr-200e_in1k_ema.py'
custom_imports = dict(
    imports=['sema_mm', 'sema_mm.selfsup', 'sema_mm.compat.mmselfsup'],
    allow_failed_imports=False)

custom_hooks = [dict(type='CopyTeacherHook')]
