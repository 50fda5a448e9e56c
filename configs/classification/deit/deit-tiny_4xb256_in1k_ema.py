"""DeiT-T on ImageNet-1K, AdamW, 300 epochs (batch 4 x 256): EMA of the
weights.

mmpretrain's ``EMAHook`` (what ``type='EMAHook'`` resolves to under the
mmpretrain scope), updated after every iteration, used for validation and saved
in checkpoints, never copied back into the model. Momentum 1e-4 (mmengine
convention, the weight of the new weights), i.e. the paper's alpha = 0.9999 for
ImageNet-1K (Table A1). Upstream ``mmpretrain::deit/deit-tiny_4xb256_in1k.py``
has no EMA hook (upstream removes the DeiT recipe's EMA for the small and tiny
archs).
"""
_base_ = 'mmpretrain::deit/deit-tiny_4xb256_in1k.py'
custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)

custom_hooks = [
    dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')
]
