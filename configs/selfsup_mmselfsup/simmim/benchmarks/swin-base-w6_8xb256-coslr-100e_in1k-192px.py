"""Evaluation of SimMIM pre-training: fine-tuning: AdamW lr 5e-3, layer decay
0.9, 100 epochs.

Upstream
``mmselfsup::benchmarks/classification/imagenet/swin-base_ft-8xb256-coslr-100e_in1k-192.py``,
with the changes of ``../../_base_/mmcls_benchmark.py``.
"""
_base_ = [
    'mmselfsup::benchmarks/classification/imagenet/swin-base_ft-8xb256-coslr-100e_in1k-192.py',  # noqa: E501
    '../../_base_/mmcls_benchmark.py',
]
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')))
