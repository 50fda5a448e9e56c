"""BYOL, ResNet-50, LARS, 200 epochs (batch 16 x 256): Switch EMA (SEMA).

The standard method plus ``SwitchEMAHook`` with ``teacher='auto'``: the model's
own momentum teacher ``target_net`` is the EMA (no second copy), and at the end
of every epoch its parameters are copied into the online backbone and neck. The
teacher, its momentum schedule (``base_momentum=0.99`` (mmselfsup's convention:
a decay), annealed by its ``CosineEMA`` to 1) and everything else the model
updates (queue, counters) are left exactly as the model's own update makes
them; ``momentum`` of the hook is unused.
"""
_base_ = './byol_resnet50_16xb256-coslr-200e_in1k_ema.py'

custom_hooks = [dict(type='SwitchEMAHook', teacher='auto')]
