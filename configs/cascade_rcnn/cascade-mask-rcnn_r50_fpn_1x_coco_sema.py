"""Cascade Mask R-CNN R-50 FPN 1x on COCO with Switch EMA (SEMA).

The baseline plus ``SwitchEMAHook`` with ``momentum=1e-3`` (the paper's
alpha = 0.999; mmengine convention: momentum = 1 - alpha), switching at the
end of every epoch (one pass over COCO train2017).
"""
_base_ = './cascade-mask-rcnn_r50_fpn_1x_coco_baseline.py'

custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
custom_hooks = [dict(type='SwitchEMAHook', momentum=1e-3)]
