"""YOLOX-S 300 epochs on COCO with Switch EMA (SEMA).

Upstream's ``EMAHook`` replaced by ``SwitchEMAHook`` (never both: each
would swap the weights for validation and checkpoints). Same averaged model
(``ExpMomentumEMA``), priority (49) and buffer handling
(``buffers='average'``, SwitchEMAHook's ``update_buffers=True``: BN
statistics are averaged and switched with the weights); ``momentum=1e-3``
is the paper's alpha = 0.999 (mmengine convention: momentum = 1 - alpha).
The switch comes at the end of every epoch, before ``SyncNormHook`` and
validation.
"""
_base_ = './yolox_s_8xb8-300e_coco_baseline.py'

custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
custom_hooks = [
    dict(type='YOLOXModeSwitchHook', num_last_epochs=15, priority=48),
    dict(type='SyncNormHook', priority=48),
    dict(
        type='SwitchEMAHook',
        ema_type='ExpMomentumEMA',
        momentum=1e-3,
        buffers='average',
        priority=49)
]
