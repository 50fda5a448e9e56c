"""Evaluation of SimMIM pre-training: fine-tuning: AdamW lr 5e-3, layer decay
0.9, 100 epochs.

Upstream
``mmpretrain::simmim/benchmarks/swin-base-w6_8xb256-coslr-100e_in1k-192px.py``,
unchanged apart from the imports and the fixes noted below. The pre-training
checkpoint is given with ``--cfg-options
model.backbone.init_cfg.checkpoint=<ckpt>`` (see ``../../README.md``).
"""
_base_ = 'mmpretrain::simmim/benchmarks/swin-base-w6_8xb256-coslr-100e_in1k-192px.py'  # noqa: E501
custom_imports = dict(
    imports=['sema_mm'], allow_failed_imports=False)

# Inheriting through `mmpretrain::` tags the upstream `collate_fn` with a
# `_scope_` key, which mmengine 0.10.7 passes on to the function as an
# argument (TypeError); declared again here, untagged.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
val_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
test_dataloader = val_dataloader
