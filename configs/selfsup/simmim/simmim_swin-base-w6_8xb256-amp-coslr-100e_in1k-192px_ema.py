"""SimMIM, Swin-B (window 6, 192 px), AdamW, 100 epochs (batch 8 x 256): EMA of
the weights.

mmpretrain's ``EMAHook`` on the whole model, momentum 1e-3 (mmengine
convention, momentum = 1 - alpha: the paper's alpha = 0.999, Table A1,
ImageNet-1K masked image modelling). The EMA is saved as the checkpoint's
``state_dict``, never copied back into the model. The variants:
``../README.md``.
"""
_base_ = 'mmpretrain::simmim/simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py'  # noqa: E501
custom_imports = dict(
    imports=['sema_mm'], allow_failed_imports=False)

custom_hooks = [
    dict(type='EMAHook', momentum=1e-3, priority='ABOVE_NORMAL')
]

# Inheriting through `mmpretrain::` tags the upstream `collate_fn` with a
# `_scope_` key, which mmengine 0.10.7 passes on to the function as an
# argument (TypeError); declared again here, untagged.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
