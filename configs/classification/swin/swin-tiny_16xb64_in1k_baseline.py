"""Swin-T on ImageNet-1K, AdamW, 300 epochs (batch 16 x 64): baseline (no
weight averaging).

Upstream ``mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py``, which has
no EMA hook. Unchanged apart from importing sema_mm.
"""
_base_ = 'mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py'
custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
