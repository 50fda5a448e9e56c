"""SimMIM, Swin-B (window 6, 192 px), AdamW, 100 epochs (batch 8 x 256): EMA of
the weights.

mmengine's ``EMAHook`` (mmselfsup registers none) on the whole model: updated
after every iteration and saved as the checkpoint's ``state_dict``, never
copied back into the model. Momentum 1e-3 (mmengine convention, weight of the
new weights): the paper's alpha = 0.999 for ImageNet-1K masked image modelling
(Table A1).

SwitchEMAHook and EMAHook (mmengine's, under the mmselfsup scope) use
mmengine's convention, momentum = 1 - alpha, unlike mmselfsup's models.
"""
_base_ = './simmim_swin-base_8xb256-amp-coslr-100e_in1k-192_baseline.py'

custom_hooks = [
    dict(type='EMAHook', momentum=1e-3, priority='ABOVE_NORMAL')
]
