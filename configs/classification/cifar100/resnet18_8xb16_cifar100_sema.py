"""ResNet-18 on CIFAR-100, 200 epochs: Switch EMA (SEMA).

The recipe of ``resnet18_8xb16_cifar100_baseline.py`` plus ``SwitchEMAHook``:
the EMA is copied into the model at the end of every epoch. Momentum 1e-2
(mmengine convention), the paper's alpha = 0.99 for CIFAR-100 classification
(Table A1). At batch 128 an epoch is 391 updates: each switch keeps 0.99**391 =
0.02 of the previous switch's weights.
"""
_base_ = ['./resnet18_8xb16_cifar100_baseline.py']

custom_hooks = [dict(type='SwitchEMAHook', momentum=1e-2)]
