"""Evaluation of MoCo v2 pre-training: linear probe: frozen backbone, SGD lr
30, step LR, 100 epochs.

Upstream
``mmselfsup::benchmarks/classification/imagenet/resnet50_linear-8xb32-steplr-100e_in1k.py``,
with the changes of ``../../_base_/mmcls_benchmark.py``.
"""
_base_ = [
    'mmselfsup::benchmarks/classification/imagenet/resnet50_linear-8xb32-steplr-100e_in1k.py',  # noqa: E501
    '../../_base_/mmcls_benchmark.py',
]
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')))
