"""ResNet-50 on ImageNet-1K, SGD, cosine LR, 100 epochs (batch 8 x 32):
baseline (no weight averaging).

Upstream ``mmpretrain::resnet/resnet50_8xb32-coslr_in1k.py``, which has no EMA
hook. Unchanged apart from importing sema_mm.
"""
_base_ = 'mmpretrain::resnet/resnet50_8xb32-coslr_in1k.py'
custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
