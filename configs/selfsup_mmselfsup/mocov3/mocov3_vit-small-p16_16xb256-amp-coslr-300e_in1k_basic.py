"""MoCo v3, ViT-S/16, AdamW, 300 epochs (batch 16 x 256): "Basic", without a
momentum teacher.

The paper's "Basic" row of Table 4: the method with its teacher
(``momentum_encoder``) following the online encoder exactly (momentum 1 in
mmengine's convention, decay 0 in the paper's), gradient still stopped.
``CopyTeacherHook`` (sema_mm.selfsup) zeroes the teacher's update counter
before every iteration, so each of the model's own teacher updates takes the
averaged model's first-update branch: an exact copy of the online backbone and
neck. No momentum value can say this: mmengine's ``ExponentialMovingAverage``
refuses momentum 1, and ``CosineEMA`` anneals towards a fixed end value.
"""
_base_ = './mocov3_vit-small-p16_16xb256-amp-coslr-300e_in1k_ema.py'
custom_imports = dict(
    imports=['sema_mm', 'sema_mm.selfsup', 'sema_mm.compat.mmselfsup'],
    allow_failed_imports=False)

custom_hooks = [dict(type='CopyTeacherHook')]
