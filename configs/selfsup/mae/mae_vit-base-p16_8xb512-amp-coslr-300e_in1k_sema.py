"""MAE, ViT-B/16, AdamW, 300 epochs (batch 8 x 512): Switch EMA (SEMA).

``SwitchEMAHook`` on the whole model: an EMA updated after every optimizer step
and copied into the model at the end of every epoch; the checkpoint's
``state_dict`` holds it (the backbone that the evaluation configs load).
Momentum 1e-3 (mmengine convention): the paper's alpha = 0.999 for ImageNet-1K
masked image modelling (Table A1).
"""
_base_ = 'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'
custom_imports = dict(
    imports=['sema_mm'], allow_failed_imports=False)

custom_hooks = [dict(type='SwitchEMAHook', momentum=1e-3)]

# Inheriting through `mmpretrain::` tags the upstream `collate_fn` with a
# `_scope_` key, which mmengine 0.10.7 passes on to the function as an
# argument (TypeError); declared again here, untagged.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
