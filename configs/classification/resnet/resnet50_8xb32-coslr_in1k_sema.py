"""ResNet-50 on ImageNet-1K, SGD, cosine LR, 100 epochs (batch 8 x 32): Switch
EMA (SEMA).

``SwitchEMAHook`` keeps an EMA of the weights, updated after every optimizer
step, and copies it into the model at the end of every epoch (before validation
and the checkpoint). Momentum 1e-3 (mmengine convention), i.e. the paper's
alpha = 0.999 for ImageNet-1K (Table A1). Upstream
``mmpretrain::resnet/resnet50_8xb32-coslr_in1k.py`` has no EMA hook.
"""
_base_ = 'mmpretrain::resnet/resnet50_8xb32-coslr_in1k.py'
custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)

custom_hooks = [dict(type='SwitchEMAHook', momentum=1e-3)]
