"""Evaluation of BYOL pre-training: linear probe: frozen backbone, LARS lr 1.6,
90 epochs.

Upstream
``mmselfsup::benchmarks/classification/imagenet/resnet50_linear-8xb512-coslr-90e_in1k.py``,
with the changes of ``../../_base_/mmcls_benchmark.py``.
"""
_base_ = [
    'mmselfsup::benchmarks/classification/imagenet/resnet50_linear-8xb512-coslr-90e_in1k.py',  # noqa: E501
    '../../_base_/mmcls_benchmark.py',
]
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')))
