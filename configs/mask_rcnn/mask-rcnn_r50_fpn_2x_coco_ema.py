"""Mask R-CNN R-50 FPN 2x on COCO with a plain EMA of the weights.

The baseline plus mmengine's ``EMAHook``: the EMA is updated after every
iteration, evaluated and saved in checkpoints, never copied back into the
training model. ``momentum=1e-4`` is the paper's alpha = 0.9999 for COCO
(mmengine convention: momentum = 1 - alpha).
"""
_base_ = './mask-rcnn_r50_fpn_2x_coco_baseline.py'

custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
custom_hooks = [dict(type='EMAHook', momentum=1e-4)]
