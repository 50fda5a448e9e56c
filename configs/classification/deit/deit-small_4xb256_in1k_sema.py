"""DeiT-S on ImageNet-1K, AdamW, 300 epochs (batch 4 x 256): Switch EMA (SEMA).

``SwitchEMAHook`` keeps an EMA of the weights, updated after every optimizer
step, and copies it into the model at the end of every epoch (before validation
and the checkpoint). Momentum 1e-3 (mmengine convention), i.e. the paper's
alpha = 0.999 for ImageNet-1K (Table A1). Upstream
``mmpretrain::deit/deit-small_4xb256_in1k.py`` has no EMA hook (upstream
removes the DeiT recipe's EMA for the small and tiny archs).
"""
_base_ = 'mmpretrain::deit/deit-small_4xb256_in1k.py'
custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)

custom_hooks = [dict(type='SwitchEMAHook', momentum=1e-3)]
