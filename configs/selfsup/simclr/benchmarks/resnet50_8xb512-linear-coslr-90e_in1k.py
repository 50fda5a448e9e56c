"""Evaluation of SimCLR pre-training: linear probe: frozen backbone, LARS lr
1.6, 90 epochs.

Upstream
``mmpretrain::simclr/benchmarks/resnet50_8xb512-linear-coslr-90e_in1k.py``,
unchanged apart from importing sema_mm. The pre-training
checkpoint is given with ``--cfg-options
model.backbone.init_cfg.checkpoint=<ckpt>`` (see ``../../README.md``).
"""
_base_ = 'mmpretrain::simclr/benchmarks/resnet50_8xb512-linear-coslr-90e_in1k.py'  # noqa: E501
custom_imports = dict(
    imports=['sema_mm'], allow_failed_imports=False)
