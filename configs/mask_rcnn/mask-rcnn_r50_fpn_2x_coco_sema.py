"""Mask R-CNN R-50 FPN 2x on COCO with Switch EMA (SEMA).

The baseline plus ``SwitchEMAHook``: an EMA of the weights, updated after
every optimizer step and copied into the model at the end of every epoch.
``momentum=1e-3`` is the paper's alpha = 0.999 for COCO (mmengine
convention: momentum = 1 - alpha); with 7330 iterations per epoch at batch
16 a switch keeps (1 - 1e-3) ** 7330 = 0.07 % of the previous switch.
"""
_base_ = './mask-rcnn_r50_fpn_2x_coco_baseline.py'

custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
custom_hooks = [dict(type='SwitchEMAHook', momentum=1e-3)]
