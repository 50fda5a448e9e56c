"""Cascade Mask R-CNN R-50 FPN multi-scale 3x on COCO with a plain EMA.

The baseline (bbox and segm AP) plus mmengine's ``EMAHook`` with
``momentum=1e-4`` (the paper's alpha = 0.9999; mmengine convention:
momentum = 1 - alpha).
"""
_base_ = './cascade-mask-rcnn_r50_fpn_ms-3x_coco_baseline.py'

custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
custom_hooks = [dict(type='EMAHook', momentum=1e-4)]
