"""MAE, ViT-B/16, AdamW, 300 epochs (batch 8 x 512): Switch EMA (SEMA).

``SwitchEMAHook`` on the whole model, momentum 1e-3 (mmengine convention,
momentum = 1 - alpha: the paper's alpha = 0.999, Table A1, ImageNet-1K masked
image modelling), switched into the model at the end of every epoch; the
checkpoint's ``state_dict`` holds the EMA. The variants: ``../README.md``.
"""
_base_ = './mae_vit-base-p16_8xb512-amp-coslr-300e_in1k_baseline.py'

custom_hooks = [dict(type='SwitchEMAHook', momentum=1e-3)]
