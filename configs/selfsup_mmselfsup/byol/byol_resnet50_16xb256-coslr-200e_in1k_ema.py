"""BYOL, ResNet-50, LARS, 200 epochs (batch 16 x 256): "EMA", the standard
method.

Upstream ``mmselfsup::selfsup/byol/byol_resnet50_16xb256-coslr-200e_in1k.py``,
unchanged apart from the imports and the fixes noted below: its momentum
teacher ``target_net`` is the EMA, with ``base_momentum=0.99`` (mmselfsup's
convention: a decay), annealed by its ``CosineEMA`` to 1. No extra hook.
"""
_base_ = 'mmselfsup::selfsup/byol/byol_resnet50_16xb256-coslr-200e_in1k.py'
# mmselfsup_compat: see sema_mm/compat/mmselfsup.py
custom_imports = dict(
    imports=['sema_mm', 'sema_mm.compat.mmselfsup'],
    allow_failed_imports=False)

# Inheriting through `mmselfsup::` tags the upstream `collate_fn` with a
# `_scope_` key, which mmengine 0.10.7 passes on to the function as an
# argument (TypeError); declared again here, untagged.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
