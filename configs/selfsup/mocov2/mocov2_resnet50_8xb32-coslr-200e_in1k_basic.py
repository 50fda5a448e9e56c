"""MoCo v2, ResNet-50, SGD, 200 epochs (batch 8 x 32): "Basic", without a
momentum teacher.

The paper's "Basic" (Table 4): ``CopyTeacherHook`` (sema_mm.selfsup) makes the
teacher ``encoder_k`` an exact copy of the online backbone and neck at every
update, the gradient still stopped; how, and why no momentum value can say it:
``../README.md``.
"""
_base_ = 'mmpretrain::mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py'
custom_imports = dict(
    imports=['sema_mm', 'sema_mm.selfsup'], allow_failed_imports=False)

custom_hooks = [dict(type='CopyTeacherHook')]

# Inheriting through `mmpretrain::` tags the upstream `collate_fn` with a
# `_scope_` key, which mmengine 0.10.7 passes on to the function as an
# argument (TypeError); declared again here, untagged.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
