"""MAE, ViT-B/16, AdamW, 300 epochs (batch 8 x 512): Switch EMA (SEMA).

``SwitchEMAHook`` on the whole model: an EMA updated after every optimizer step
and copied into the model at the end of every epoch; the checkpoint's
``state_dict`` holds it (the backbone that the evaluation configs load).
Momentum 1e-3 (mmengine convention): the paper's alpha = 0.999 for ImageNet-1K
masked image modelling (Table A1).

SwitchEMAHook and EMAHook (mmengine's, under the mmselfsup scope) use
mmengine's convention, momentum = 1 - alpha, unlike mmselfsup's models.
"""
_base_ = './mae_vit-base-p16_8xb512-amp-coslr-300e_in1k_baseline.py'

custom_hooks = [dict(type='SwitchEMAHook', momentum=1e-3)]
