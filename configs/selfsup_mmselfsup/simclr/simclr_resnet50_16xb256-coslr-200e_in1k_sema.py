"""SimCLR, ResNet-50, LARS, 200 epochs (batch 16 x 256): Switch EMA (SEMA).

``SwitchEMAHook`` on the whole model, momentum 1e-4 (mmengine convention,
momentum = 1 - alpha: the paper's alpha = 0.9999, Table A1, ImageNet-1K
contrastive), switched into the model at the end of every epoch; the
checkpoint's ``state_dict`` holds the EMA. The variants: ``../README.md``.
"""
_base_ = './simclr_resnet50_16xb256-coslr-200e_in1k_baseline.py'

custom_hooks = [dict(type='SwitchEMAHook', momentum=1e-4)]
