"""ResNet-50 on ImageNet-1K, SGD, cosine LR, 100 epochs (batch 8 x 32): EMA of
the weights.

mmpretrain's ``EMAHook`` (what ``type='EMAHook'`` resolves to under the
mmpretrain scope), updated after every iteration, used for validation and saved
in checkpoints, never copied back into the model. Momentum 1e-4 (mmengine
convention, the weight of the new weights), i.e. the paper's alpha = 0.9999 for
ImageNet-1K (Table A1). Upstream
``mmpretrain::resnet/resnet50_8xb32-coslr_in1k.py`` has no EMA hook.
"""
_base_ = 'mmpretrain::resnet/resnet50_8xb32-coslr_in1k.py'
custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)

custom_hooks = [
    dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')
]
