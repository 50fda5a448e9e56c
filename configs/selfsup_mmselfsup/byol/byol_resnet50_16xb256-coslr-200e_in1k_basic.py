"""BYOL, ResNet-50, LARS, 200 epochs (batch 16 x 256): "Basic", without a
momentum teacher.

The paper's "Basic" (Table 4): ``CopyTeacherHook`` (sema_mm.selfsup) makes the
teacher ``target_net`` an exact copy of the online backbone and neck at every
update, the gradient still stopped; how, and why no momentum value can say it:
``../README.md``.
"""
_base_ = './byol_resnet50_16xb256-coslr-200e_in1k_ema.py'
custom_imports = dict(
    imports=['sema_mm', 'sema_mm.selfsup', 'sema_mm.compat.mmselfsup'],
    allow_failed_imports=False)

custom_hooks = [dict(type='CopyTeacherHook')]
