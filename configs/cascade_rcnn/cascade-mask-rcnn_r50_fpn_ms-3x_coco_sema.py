"""Cascade Mask R-CNN R-50 FPN multi-scale 3x on COCO with Switch EMA.

The baseline (bbox and segm AP) plus ``SwitchEMAHook`` with
``momentum=1e-3`` (the paper's alpha = 0.999; mmengine convention:
momentum = 1 - alpha). A runner epoch here is three passes over COCO
(``RepeatDataset(times=3)``), so ``switches_per_epoch=3`` switches once per
real pass, 36 times in all: after a third and two thirds of every runner
epoch, and at its end, before validation and the checkpoint.
"""
_base_ = './cascade-mask-rcnn_r50_fpn_ms-3x_coco_baseline.py'

custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
custom_hooks = [
    dict(type='SwitchEMAHook', momentum=1e-3, switches_per_epoch=3)
]
