"""Barlow Twins, ResNet-50, LARS, 300 epochs (batch 8 x 256): EMA of the
weights.

mmpretrain's ``EMAHook`` (what ``type='EMAHook'`` resolves to under the
mmpretrain scope) on the whole model: updated after every iteration and saved
as the checkpoint's ``state_dict``, never copied back into the model. Momentum
4e-5 (mmengine convention, weight of the new weights): the paper's alpha =
0.99996 for ImageNet-1K contrastive (Table A1).
"""
_base_ = 'mmpretrain::barlowtwins/barlowtwins_resnet50_8xb256-coslr-300e_in1k.py'  # noqa: E501
custom_imports = dict(
    imports=['sema_mm'], allow_failed_imports=False)

custom_hooks = [
    dict(type='EMAHook', momentum=4e-5, priority='ABOVE_NORMAL')
]

# Inheriting through `mmpretrain::` tags the upstream `collate_fn` with a
# `_scope_` key, which mmengine 0.10.7 passes on to the function as an
# argument (TypeError); declared again here, untagged.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
