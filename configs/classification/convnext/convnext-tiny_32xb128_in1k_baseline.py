"""ConvNeXt-T on ImageNet-1K, AdamW, 300 epochs (batch 32 x 128): baseline (no
weight averaging).

Upstream ``mmpretrain::convnext/convnext-tiny_32xb128_in1k.py``, which has
mmpretrain's EMAHook(momentum=1e-4, priority='ABOVE_NORMAL'). This variant
removes it (``custom_hooks`` is replaced whole), as the paper does for its
baseline (Appendix B.1).
"""
_base_ = 'mmpretrain::convnext/convnext-tiny_32xb128_in1k.py'
custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)

custom_hooks = []
