"""RetinaNet R-50 FPN 2x on COCO with Switch EMA (SEMA).

The baseline plus ``SwitchEMAHook`` with ``momentum=1e-3`` (the paper's
alpha = 0.999; mmengine convention: momentum = 1 - alpha), switching at the
end of every epoch.
"""
_base_ = './retinanet_r50_fpn_2x_coco_baseline.py'

custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
custom_hooks = [dict(type='SwitchEMAHook', momentum=1e-3)]
