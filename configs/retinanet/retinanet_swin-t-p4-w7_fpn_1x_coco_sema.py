"""RetinaNet Swin-T FPN 1x on COCO, AdamW, with Switch EMA (SEMA).

The baseline plus ``SwitchEMAHook`` with ``momentum=1e-3`` (the paper's
alpha = 0.999; mmengine convention: momentum = 1 - alpha). The switch copies
the EMA into the parameters only; AdamW's moments are kept.
"""
_base_ = './retinanet_swin-t-p4-w7_fpn_1x_coco_baseline.py'

custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
custom_hooks = [dict(type='SwitchEMAHook', momentum=1e-3)]
