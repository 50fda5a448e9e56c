"""SimCLR, ResNet-50, LARS, 200 epochs (batch 16 x 256): EMA of the weights.

mmengine's ``EMAHook`` (mmselfsup registers none) on the whole model, momentum
4e-5 (mmengine convention, momentum = 1 - alpha: the paper's alpha = 0.99996,
Table A1, ImageNet-1K contrastive). The EMA is saved as the checkpoint's
``state_dict``, never copied back into the model. The variants:
``../README.md``.
"""
_base_ = './simclr_resnet50_16xb256-coslr-200e_in1k_baseline.py'

custom_hooks = [
    dict(type='EMAHook', momentum=4e-5, priority='ABOVE_NORMAL')
]
