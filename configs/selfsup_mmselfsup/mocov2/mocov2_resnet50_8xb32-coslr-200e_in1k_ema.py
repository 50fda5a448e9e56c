"""MoCo v2, ResNet-50, SGD, 200 epochs (batch 8 x 32): "EMA", the standard
method.

Upstream
``mmselfsup::selfsup/mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py``,
unchanged apart from the imports and the fixes noted below: its momentum
teacher ``encoder_k`` is the EMA, with ``momentum=0.999`` (mmselfsup's
convention: a decay; the model uses ``1 - momentum`` = 0.001 as mmengine's
weight of the new weights). No extra hook.
"""
_base_ = 'mmselfsup::selfsup/mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py'
# mmselfsup_compat: see sema_mm/compat/mmselfsup.py
custom_imports = dict(
    imports=['sema_mm', 'sema_mm.compat.mmselfsup'],
    allow_failed_imports=False)

# Inheriting through `mmselfsup::` tags the upstream `collate_fn` with a
# `_scope_` key, which mmengine 0.10.7 passes on to the function as an
# argument (TypeError); declared again here, untagged.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
