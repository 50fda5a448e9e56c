"""Evaluation of BYOL pre-training: linear probe: frozen backbone, LARS lr 1.6,
90 epochs.

Upstream
``mmpretrain::byol/benchmarks/resnet50_8xb512-linear-coslr-90e_in1k.py``,
unchanged apart from importing sema_mm. The pre-training
checkpoint is given with ``--cfg-options
model.backbone.init_cfg.checkpoint=<ckpt>`` (see ``../../README.md``).
"""
_base_ = 'mmpretrain::byol/benchmarks/resnet50_8xb512-linear-coslr-90e_in1k.py'
custom_imports = dict(
    imports=['sema_mm'], allow_failed_imports=False)
