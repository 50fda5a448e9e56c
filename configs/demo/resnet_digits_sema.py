"""Small ResNet-18 on the digits with Switch EMA (SEMA).

SwitchEMAHook keeps an EMA of the weights, updated after every optimizer
step, and copies it into the model at the end of every epoch; validation and
checkpoints see the EMA (equal to the model right after each switch).

Momentum (mmengine convention: the weight of the new weights; the paper's
decay is alpha = 1 - momentum). With the default data (1258 training images,
batch 32) an epoch, and so one switch interval, is ceil(1258 / 32) = 40 EMA
updates. At each switch the EMA still gives the weights of the previous
switch the weight (1 - m) ** 40, which SwitchEMAHook warns about above 0.5:

    m = 0.01: 0.99 ** 40 = 0.67  (warns: each switch undoes 2/3 of an epoch)
    m = 0.02: 0.98 ** 40 = 0.45  (just below the threshold)
    m = 0.1:  0.9 ** 40  = 0.015 (chosen)

m = 0.1 gives the EMA a time constant of 1 / m = 10 updates, a quarter of an
epoch, the same ratio as the paper's CIFAR-100 setting (m = 0.01: 100 of
391 updates, pull-back 0.99 ** 391 = 0.02). It also stays silent on small
training subsets down to 7 updates per epoch (0.9 ** 7 = 0.48), i.e.
``--train-size`` >= 193 images at batch 32.
"""
_base_ = ['./_base_/resnet_digits.py']

custom_hooks = [dict(type='SwitchEMAHook', momentum=0.1)]
