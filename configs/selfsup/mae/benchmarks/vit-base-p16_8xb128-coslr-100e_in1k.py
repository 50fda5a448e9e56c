"""Evaluation of MAE pre-training: fine-tuning (the paper's protocol for MAE):
AdamW lr 2e-3, layer decay 0.65, 100 epochs.

Upstream ``mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py``,
unchanged apart from importing sema_mm. The pre-training
checkpoint is given with ``--cfg-options
model.backbone.init_cfg.checkpoint=<ckpt>`` (see ``../../README.md``).
"""
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'
custom_imports = dict(
    imports=['sema_mm'], allow_failed_imports=False)
