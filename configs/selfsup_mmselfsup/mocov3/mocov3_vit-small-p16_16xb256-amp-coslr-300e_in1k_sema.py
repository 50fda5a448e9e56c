"""MoCo v3, ViT-S/16, AdamW, 300 epochs (batch 16 x 256): Switch EMA (SEMA).

The standard method plus ``SwitchEMAHook(teacher='auto')``: the model's own
teacher ``momentum_encoder`` is the EMA, with the model's schedule:
``base_momentum=0.99`` (mmselfsup's convention: a decay), annealed by its
``CosineEMA`` to 1. At the end of every epoch it is copied into the online
backbone and neck; the hook's ``momentum`` is unused. The variants:
``../README.md``.
"""
_base_ = './mocov3_vit-small-p16_16xb256-amp-coslr-300e_in1k_ema.py'

custom_hooks = [dict(type='SwitchEMAHook', teacher='auto')]
