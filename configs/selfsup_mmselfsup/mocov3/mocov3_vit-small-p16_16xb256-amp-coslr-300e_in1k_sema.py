"""MoCo v3, ViT-S/16, AdamW, 300 epochs (batch 16 x 256): Switch EMA (SEMA).

The standard method plus ``SwitchEMAHook`` with ``teacher='auto'``: the model's
own momentum teacher ``momentum_encoder`` is the EMA (no second copy), and at
the end of every epoch its parameters are copied into the online backbone and
neck. The teacher, its momentum schedule (``base_momentum=0.99`` (mmselfsup's
convention: a decay), annealed by its ``CosineEMA`` to 1) and everything else
the model updates (queue, counters) are left exactly as the model's own update
makes them; ``momentum`` of the hook is unused.
"""
_base_ = './mocov3_vit-small-p16_16xb256-amp-coslr-300e_in1k_ema.py'

custom_hooks = [dict(type='SwitchEMAHook', teacher='auto')]
