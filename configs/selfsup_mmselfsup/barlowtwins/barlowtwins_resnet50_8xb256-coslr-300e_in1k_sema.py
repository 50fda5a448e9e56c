"""Barlow Twins, ResNet-50, LARS, 300 epochs (batch 8 x 256): Switch EMA
(SEMA).

``SwitchEMAHook`` on the whole model: an EMA updated after every optimizer step
and copied into the model at the end of every epoch; the checkpoint's
``state_dict`` holds it (the backbone that the evaluation configs load).
Momentum 1e-4 (mmengine convention): the paper's alpha = 0.9999 for ImageNet-1K
contrastive (Table A1).

SwitchEMAHook and EMAHook (mmengine's, under the mmselfsup scope) use
mmengine's convention, momentum = 1 - alpha, unlike mmselfsup's models.
"""
_base_ = './barlowtwins_resnet50_8xb256-coslr-300e_in1k_baseline.py'

custom_hooks = [dict(type='SwitchEMAHook', momentum=1e-4)]
