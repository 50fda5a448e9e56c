"""Evaluation of MAE pre-training: fine-tuning (the paper's protocol for MAE):
AdamW lr 2e-3, layer decay 0.65, 100 epochs.

Upstream
``mmselfsup::benchmarks/classification/imagenet/vit-base-p16_ft-8xb128-coslr-100e_in1k.py``,
with the changes of ``../../_base_/mmcls_benchmark.py``.
"""
_base_ = [
    'mmselfsup::benchmarks/classification/imagenet/vit-base-p16_ft-8xb128-coslr-100e_in1k.py',  # noqa: E501
    '../../_base_/mmcls_benchmark.py',
]
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')))
