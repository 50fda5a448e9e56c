"""YOLOX-S 300 epochs on COCO without weight averaging.

mmdet 3.3.0's config (trained from scratch: SGD lr 0.01 with Nesterov,
batch 64, Mosaic and MixUp, cosine schedule) without its ``EMAHook``: the
"Basic" column of the SEMA paper's Table 7. ``custom_hooks`` is a list,
which a child config replaces whole, so upstream's other two hooks are
declared again as they are upstream.
"""
_base_ = 'mmdet::yolox/yolox_s_8xb8-300e_coco.py'

custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
custom_hooks = [
    # Mosaic and MixUp off, L1 loss on for the last 15 epochs (upstream's
    # num_last_epochs).
    dict(type='YOLOXModeSwitchHook', num_last_epochs=15, priority=48),
    dict(type='SyncNormHook', priority=48),
]
