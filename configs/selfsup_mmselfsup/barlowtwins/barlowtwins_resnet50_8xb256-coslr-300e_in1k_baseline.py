"""Barlow Twins, ResNet-50, LARS, 300 epochs (batch 8 x 256): baseline (no
weight averaging).

Upstream
``mmselfsup::selfsup/barlowtwins/barlowtwins_resnet50_8xb256-coslr-300e_in1k.py``,
unchanged apart from the imports and the fixes noted below. Barlow Twins has no
momentum teacher.
"""
_base_ = 'mmselfsup::selfsup/barlowtwins/barlowtwins_resnet50_8xb256-coslr-300e_in1k.py'  # noqa: E501
# mmselfsup_compat: see sema_mm/compat/mmselfsup.py
custom_imports = dict(
    imports=['sema_mm', 'sema_mm.compat.mmselfsup'],
    allow_failed_imports=False)

# Inheriting through `mmselfsup::` tags the upstream `collate_fn` with a
# `_scope_` key, which mmengine 0.10.7 passes on to the function as an
# argument (TypeError); declared again here, untagged.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
