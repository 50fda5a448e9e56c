"""ResNet-18 on CIFAR-100, 200 epochs: EMA of the weights.

The recipe of ``resnet18_8xb16_cifar100_baseline.py`` plus mmpretrain's
``EMAHook`` (validation and checkpoints use the EMA, never copied back).
Momentum 1e-2 (mmengine convention), the paper's alpha = 0.99 for CIFAR-100
classification (Table A1).
"""
_base_ = ['./resnet18_8xb16_cifar100_baseline.py']

custom_hooks = [
    dict(type='EMAHook', momentum=1e-2, priority='ABOVE_NORMAL')
]
