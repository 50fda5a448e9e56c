"""Evaluation of Barlow Twins pre-training: linear probe: frozen backbone, SGD
lr 0.3, cosine LR, 100 epochs.

Upstream
``mmselfsup::benchmarks/classification/imagenet/resnet50_linear-8xb32-coslr-100e_in1k.py``,
with the changes of ``../../_base_/mmcls_benchmark.py``.
"""
_base_ = [
    'mmselfsup::benchmarks/classification/imagenet/resnet50_linear-8xb32-coslr-100e_in1k.py',  # noqa: E501
    '../../_base_/mmcls_benchmark.py',
]
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')))
