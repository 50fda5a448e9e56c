"""Evaluation of Barlow Twins pre-training: linear probe: frozen backbone, SGD
lr 0.3, cosine LR, 100 epochs.

Upstream
``mmpretrain::barlowtwins/benchmarks/resnet50_8xb32-linear-coslr-100e_in1k.py``,
unchanged apart from importing sema_mm. The pre-training
checkpoint is given with ``--cfg-options
model.backbone.init_cfg.checkpoint=<ckpt>`` (see ``../../README.md``).
"""
_base_ = 'mmpretrain::barlowtwins/benchmarks/resnet50_8xb32-linear-coslr-100e_in1k.py'  # noqa: E501
custom_imports = dict(
    imports=['sema_mm'], allow_failed_imports=False)
