"""BYOL, ResNet-50, LARS, 200 epochs (batch 16 x 256): Switch EMA (SEMA).

The standard method plus ``SwitchEMAHook(teacher='auto')``: the model's own
teacher ``target_net`` is the EMA, with the model's schedule:
``base_momentum=0.01`` (mmengine convention), annealed by ``CosineEMA`` to 0
(decay 0.99 -> 1). At the end of every epoch it is copied into the online
backbone and neck; the hook's ``momentum`` is unused. The variants:
``../README.md``.
"""
_base_ = 'mmpretrain::byol/byol_resnet50_16xb256-coslr-200e_in1k.py'
custom_imports = dict(
    imports=['sema_mm'], allow_failed_imports=False)

custom_hooks = [dict(type='SwitchEMAHook', teacher='auto')]

# Inheriting through `mmpretrain::` tags the upstream `collate_fn` with a
# `_scope_` key, which mmengine 0.10.7 passes on to the function as an
# argument (TypeError); declared again here, untagged.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
