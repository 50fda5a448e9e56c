"""RetinaNet R-50 FPN 2x on COCO with a plain EMA of the weights.

The baseline plus mmengine's ``EMAHook`` with ``momentum=1e-4`` (the
paper's alpha = 0.9999; mmengine convention: momentum = 1 - alpha).
"""
_base_ = './retinanet_r50_fpn_2x_coco_baseline.py'

custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
custom_hooks = [dict(type='EMAHook', momentum=1e-4)]
