"""MoCo v3, ViT-S/16, AdamW, 300 epochs (batch 16 x 256): "Basic", without a
momentum teacher.

The paper's "Basic" (Table 4): ``CopyTeacherHook`` (sema_mm.selfsup) makes the
teacher ``momentum_encoder`` an exact copy of the online backbone and neck at
every update, the gradient still stopped; how, and why no momentum value can
say it: ``../README.md``.
"""
_base_ = 'mmpretrain::mocov3/mocov3_vit-small-p16_16xb256-amp-coslr-300e_in1k.py'  # noqa: E501
custom_imports = dict(
    imports=['sema_mm', 'sema_mm.selfsup'], allow_failed_imports=False)

custom_hooks = [dict(type='CopyTeacherHook')]

# Inheriting through `mmpretrain::` tags the upstream `collate_fn` with a
# `_scope_` key, which mmengine 0.10.7 passes on to the function as an
# argument (TypeError); declared again here, untagged.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
