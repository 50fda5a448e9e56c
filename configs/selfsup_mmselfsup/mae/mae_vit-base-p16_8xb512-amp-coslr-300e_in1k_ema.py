"""MAE, ViT-B/16, AdamW, 300 epochs (batch 8 x 512): EMA of the weights.

mmengine's ``EMAHook`` (mmselfsup registers none) on the whole model: updated
after every iteration and saved as the checkpoint's ``state_dict``, never
copied back into the model. Momentum 1e-3 (mmengine convention, weight of the
new weights): the paper's alpha = 0.999 for ImageNet-1K masked image modelling
(Table A1).

SwitchEMAHook and EMAHook (mmengine's, under the mmselfsup scope) use
mmengine's convention, momentum = 1 - alpha, unlike mmselfsup's models.
"""
_base_ = './mae_vit-base-p16_8xb512-amp-coslr-300e_in1k_baseline.py'

custom_hooks = [
    dict(type='EMAHook', momentum=1e-3, priority='ABOVE_NORMAL')
]
