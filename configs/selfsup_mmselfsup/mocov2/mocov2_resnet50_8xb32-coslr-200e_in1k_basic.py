"""MoCo v2, ResNet-50, SGD, 200 epochs (batch 8 x 32): "Basic", without a
momentum teacher.

The paper's "Basic" row of Table 4: the method with its teacher (``encoder_k``)
following the online encoder exactly (momentum 1 in mmengine's convention,
decay 0 in the paper's), gradient still stopped. ``CopyTeacherHook``
(sema_mm.selfsup) zeroes the teacher's update counter before every iteration,
so each of the model's own teacher updates takes the averaged model's
first-update branch: an exact copy of the online backbone and neck. No momentum
value can say this: mmengine's ``ExponentialMovingAverage`` refuses momentum 1,
and ``CosineEMA`` anneals towards a fixed end value.
"""
_base_ = './mocov2_resnet50_8xb32-coslr-200e_in1k_ema.py'
custom_imports = dict(
    imports=['sema_mm', 'sema_mm.selfsup', 'sema_mm.compat.mmselfsup'],
    allow_failed_imports=False)

custom_hooks = [dict(type='CopyTeacherHook')]
