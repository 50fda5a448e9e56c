"""DeiT-T on ImageNet-1K, AdamW, 300 epochs (batch 4 x 256): baseline (no
weight averaging).

Upstream ``mmpretrain::deit/deit-tiny_4xb256_in1k.py``, which has no EMA hook
(upstream removes the DeiT recipe's EMA for the small and tiny archs).
Unchanged apart from importing sema_mm.
"""
_base_ = 'mmpretrain::deit/deit-tiny_4xb256_in1k.py'
custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
