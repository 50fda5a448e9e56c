"""Evaluation of BYOL pre-training: linear probe: frozen backbone, LARS lr 1.6,
90 epochs.

Upstream
``mmselfsup::benchmarks/classification/imagenet/resnet50_linear-8xb512-coslr-90e_in1k.py``,
with the backbone initialised from a pre-training checkpoint as in the
mmpretrain configs (upstream leaves ``init_cfg`` to the user)::

    --cfg-options model.backbone.init_cfg.checkpoint=<ckpt>

The pre-training checkpoint's ``state_dict`` holds the EMA weights (for
SwitchEMAHook: the weights after the last switch). The default scope is
``mmcls`` (mmcls 1.0.0rc6), as upstream.
"""
_base_ = 'mmselfsup::benchmarks/classification/imagenet/resnet50_linear-8xb512-coslr-90e_in1k.py'  # noqa: E501
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
    _scope_='mmcls',
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')))
train_dataloader = dict(
    dataset=dict(_scope_='mmcls'),
    collate_fn=dict(_delete_=True, type='default_collate'))
val_dataloader = dict(dataset=dict(_scope_='mmcls'))
test_dataloader = dict(dataset=dict(_scope_='mmcls'))
val_evaluator = dict(_scope_='mmcls')
test_evaluator = dict(_scope_='mmcls')
train_cfg = dict(_scope_='mmcls')  # the loop builds the dataloaders
