"""MoCo v2, ResNet-50, SGD, 200 epochs (batch 8 x 32): Switch EMA (SEMA).

The standard method plus ``SwitchEMAHook`` with ``teacher='auto'``: the model's
own momentum teacher ``encoder_k`` is the EMA (no second copy), and at the end
of every epoch its parameters are copied into the online backbone and neck. The
teacher, its momentum schedule (``momentum=0.999`` (mmselfsup's convention: a
decay; the model uses ``1 - momentum`` = 0.001 as mmengine's weight of the new
weights)) and everything else the model updates (queue, counters) are left
exactly as the model's own update makes them; ``momentum`` of the hook is
unused.
"""
_base_ = 'mmselfsup::selfsup/mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py'
# mmselfsup_compat: see sema_mm/compat/mmselfsup.py
custom_imports = dict(
    imports=['sema_mm', 'sema_mm.compat.mmselfsup'],
    allow_failed_imports=False)

custom_hooks = [dict(type='SwitchEMAHook', teacher='auto')]

# Inheriting through `mmselfsup::` tags the upstream `collate_fn` with a
# `_scope_` key, which mmengine 0.10.7 passes on to the function as an
# argument (TypeError); declared again here, untagged.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
