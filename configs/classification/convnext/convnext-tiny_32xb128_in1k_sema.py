"""ConvNeXt-T on ImageNet-1K, AdamW, 300 epochs (batch 32 x 128): Switch EMA
(SEMA).

``SwitchEMAHook`` keeps an EMA of the weights, updated after every optimizer
step, and copies it into the model at the end of every epoch (before validation
and the checkpoint). Momentum 1e-3 (mmengine convention), i.e. the paper's
alpha = 0.999 for ImageNet-1K (Table A1). Upstream's mmpretrain ``EMAHook`` is
replaced (``custom_hooks`` is a list and is replaced whole): exactly one
EMA-type hook runs. At batch 4096 an epoch is 313 updates, so the hook reports
a pull-back of 0.999**313 = 0.73 and warns (see the README).
"""
_base_ = 'mmpretrain::convnext/convnext-tiny_32xb128_in1k.py'
custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)

custom_hooks = [dict(type='SwitchEMAHook', momentum=1e-3)]
