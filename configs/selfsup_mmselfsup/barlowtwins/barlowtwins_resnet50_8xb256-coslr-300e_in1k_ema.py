"""Barlow Twins, ResNet-50, LARS, 300 epochs (batch 8 x 256): EMA of the
weights.

mmengine's ``EMAHook`` (mmselfsup registers none) on the whole model: updated
after every iteration and saved as the checkpoint's ``state_dict``, never
copied back into the model. Momentum 4e-5 (mmengine convention, weight of the
new weights): the paper's alpha = 0.99996 for ImageNet-1K contrastive (Table
A1).

SwitchEMAHook and EMAHook (mmengine's, under the mmselfsup scope) use
mmengine's convention, momentum = 1 - alpha, unlike mmselfsup's models.
"""
_base_ = './barlowtwins_resnet50_8xb256-coslr-300e_in1k_baseline.py'

custom_hooks = [
    dict(type='EMAHook', momentum=4e-5, priority='ABOVE_NORMAL')
]
