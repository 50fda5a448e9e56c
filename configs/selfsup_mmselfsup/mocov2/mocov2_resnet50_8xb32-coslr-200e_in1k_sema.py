"""MoCo v2, ResNet-50, SGD, 200 epochs (batch 8 x 32): Switch EMA (SEMA).

The standard method plus ``SwitchEMAHook`` with ``teacher='auto'``: the model's
own momentum teacher ``encoder_k`` is the EMA (no second copy), and at the end
of every epoch its parameters are copied into the online backbone and neck. The
teacher, its momentum schedule (``momentum=0.999`` (mmselfsup's convention: a
decay; the model uses ``1 - momentum`` = 0.001 as mmengine's weight of the new
weights)) and everything else the model updates (queue, counters) are left
exactly as the model's own update makes them; ``momentum`` of the hook is
unused.
"""
_base_ = './mocov2_resnet50_8xb32-coslr-200e_in1k_ema.py'

custom_hooks = [dict(type='SwitchEMAHook', teacher='auto')]
