"""YOLOX-S 300 epochs on COCO with upstream's EMA.

The baseline plus the ``EMAHook`` of mmdet's own YOLOX config, exactly as
upstream: ``ExpMomentumEMA`` (momentum warmed up from 1 to ``momentum``),
``momentum=1e-4`` (alpha = 0.9999, the paper's EMA), BN statistics averaged
too, priority 49, after ``YOLOXModeSwitchHook`` and ``SyncNormHook`` (48).
"""
_base_ = './yolox_s_8xb8-300e_coco_baseline.py'

custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
custom_hooks = [
    dict(type='YOLOXModeSwitchHook', num_last_epochs=15, priority=48),
    dict(type='SyncNormHook', priority=48),
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0001,
        update_buffers=True,
        priority=49)
]
