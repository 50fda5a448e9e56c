"""MoCo v2, ResNet-50, SGD, 200 epochs (batch 8 x 32): Switch EMA (SEMA).

The standard method plus ``SwitchEMAHook(teacher='auto')``: the model's own
teacher ``encoder_k`` is the EMA, with the model's schedule: ``momentum=0.001``
(mmengine convention: weight of the new weights; decay 0.999). At the end of
every epoch it is copied into the online backbone and neck; the hook's
``momentum`` is unused. The variants: ``../README.md``.
"""
_base_ = 'mmpretrain::mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py'
custom_imports = dict(
    imports=['sema_mm'], allow_failed_imports=False)

custom_hooks = [dict(type='SwitchEMAHook', teacher='auto')]

# Inheriting through `mmpretrain::` tags the upstream `collate_fn` with a
# `_scope_` key, which mmengine 0.10.7 passes on to the function as an
# argument (TypeError); declared again here, untagged.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
