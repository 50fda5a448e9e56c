"""Barlow Twins, ResNet-50, LARS, 300 epochs (batch 8 x 256): Switch EMA
(SEMA).

``SwitchEMAHook`` on the whole model, momentum 1e-4 (mmengine convention,
momentum = 1 - alpha: the paper's alpha = 0.9999, Table A1, ImageNet-1K
contrastive), switched into the model at the end of every epoch; the
checkpoint's ``state_dict`` holds the EMA. The variants: ``../README.md``.
"""
_base_ = 'mmpretrain::barlowtwins/barlowtwins_resnet50_8xb256-coslr-300e_in1k.py'  # noqa: E501
custom_imports = dict(
    imports=['sema_mm'], allow_failed_imports=False)

custom_hooks = [dict(type='SwitchEMAHook', momentum=1e-4)]

# Inheriting through `mmpretrain::` tags the upstream `collate_fn` with a
# `_scope_` key, which mmengine 0.10.7 passes on to the function as an
# argument (TypeError); declared again here, untagged.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
