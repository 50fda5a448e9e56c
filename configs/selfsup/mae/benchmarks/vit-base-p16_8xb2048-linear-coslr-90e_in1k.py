"""Evaluation of MAE pre-training: linear probe: frozen ViT-B, LARS lr 6.4, 90
epochs.

Upstream
``mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py``,
unchanged apart from importing sema_mm. The pre-training
checkpoint is given with ``--cfg-options
model.backbone.init_cfg.checkpoint=<ckpt>`` (see ``../../README.md``).
"""
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'  # noqa: E501
custom_imports = dict(
    imports=['sema_mm'], allow_failed_imports=False)
