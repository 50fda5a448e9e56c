"""Evaluation of SimMIM pre-training: fine-tuning: AdamW lr 5e-3, layer decay
0.9, 100 epochs.

Upstream
``mmselfsup::benchmarks/classification/imagenet/swin-base_ft-8xb256-coslr-100e_in1k-192.py``,
with the backbone initialised from a pre-training checkpoint as in the
mmpretrain configs (upstream leaves ``init_cfg`` to the user)::

    --cfg-options model.backbone.init_cfg.checkpoint=<ckpt>

The pre-training checkpoint's ``state_dict`` holds the EMA weights (for
SwitchEMAHook: the weights after the last switch). The default scope is
``mmcls`` (mmcls 1.0.0rc6), as upstream.
"""
_base_ = 'mmselfsup::benchmarks/classification/imagenet/swin-base_ft-8xb256-coslr-100e_in1k-192.py'  # noqa: E501
# mmselfsup_compat: see sema_mm/compat/mmselfsup.py
custom_imports = dict(
    imports=['sema_mm', 'sema_mm.compat.mmselfsup'],
    allow_failed_imports=False)

# Inheriting through `mmselfsup::` tags every outer dict with a `type` in
# this benchmark (written for mmselfsup's own tree, default scope `mmcls`)
# with `_scope_='mmselfsup'`, where mmcls's classifier, datasets and metrics
# are not registered: they are built in the mmcls scope again. The untagged
# `collate_fn`: mmengine 0.10.7 would pass the tag on to `default_collate`.
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')))
train_dataloader = dict(dataset=dict(_scope_='mmcls'))
val_dataloader = dict(dataset=dict(_scope_='mmcls'))
test_dataloader = dict(dataset=dict(_scope_='mmcls'))
val_evaluator = dict(_scope_='mmcls')
test_evaluator = dict(_scope_='mmcls')
train_cfg = dict(_scope_='mmcls')  # the loop builds the dataloaders
