"""Small ResNet-18 on the digits with a plain EMA (mmpretrain's EMAHook).

The EMA is updated after every optimizer step and used for validation and
saved in checkpoints, but never copied back into the training model. Its
momentum (mmengine convention: the weight of the new weights) is the one of
``resnet_digits_sema.py``, so that the two runs differ only by the switch.
"""
_base_ = ['./_base_/resnet_digits.py']

custom_hooks = [
    dict(type='EMAHook', momentum=0.1, priority='ABOVE_NORMAL'),
]
