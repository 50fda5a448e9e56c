"""SimCLR, ResNet-50, LARS, 200 epochs (batch 16 x 256): EMA of the weights.

mmpretrain's ``EMAHook`` on the whole model, momentum 4e-5 (mmengine
convention, momentum = 1 - alpha: the paper's alpha = 0.99996, Table A1,
ImageNet-1K contrastive). The EMA is saved as the checkpoint's ``state_dict``,
never copied back into the model. The variants: ``../README.md``.
"""
_base_ = 'mmpretrain::simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py'
custom_imports = dict(
    imports=['sema_mm'], allow_failed_imports=False)

custom_hooks = [
    dict(type='EMAHook', momentum=4e-5, priority='ABOVE_NORMAL')
]

# Inheriting through `mmpretrain::` tags the upstream `collate_fn` with a
# `_scope_` key, which mmengine 0.10.7 passes on to the function as an
# argument (TypeError); declared again here, untagged.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
