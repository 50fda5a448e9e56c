"""Evaluation of MoCo v2 pre-training: linear probe: frozen backbone, SGD lr
30, step LR, 100 epochs.

Upstream
``mmpretrain::mocov2/benchmarks/resnet50_8xb32-linear-steplr-100e_in1k.py``,
unchanged apart from importing sema_mm. The pre-training
checkpoint is given with ``--cfg-options
model.backbone.init_cfg.checkpoint=<ckpt>`` (see ``../../README.md``).
"""
_base_ = 'mmpretrain::mocov2/benchmarks/resnet50_8xb32-linear-steplr-100e_in1k.py'  # noqa: E501
custom_imports = dict(
    imports=['sema_mm'], allow_failed_imports=False)
