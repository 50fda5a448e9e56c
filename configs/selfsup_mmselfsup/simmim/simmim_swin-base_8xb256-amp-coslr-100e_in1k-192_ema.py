"""SimMIM, Swin-B (window 6, 192 px), AdamW, 100 epochs (batch 8 x 256): EMA of
the weights.

mmengine's ``EMAHook`` (mmselfsup registers none) on the whole model, momentum
1e-3 (mmengine convention, momentum = 1 - alpha: the paper's alpha = 0.999,
Table A1, ImageNet-1K masked image modelling). The EMA is saved as the
checkpoint's ``state_dict``, never copied back into the model. The variants:
``../README.md``.
"""
_base_ = './simmim_swin-base_8xb256-amp-coslr-100e_in1k-192_baseline.py'

custom_hooks = [
    dict(type='EMAHook', momentum=1e-3, priority='ABOVE_NORMAL')
]
