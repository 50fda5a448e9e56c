"""Evaluation of MoCo v3 pre-training: linear probe: frozen ViT-S, SGD lr 12,
cosine LR, 90 epochs.

Upstream
``mmselfsup::benchmarks/classification/imagenet/vit-small-p16_linear-8xb128-coslr-90e_in1k.py``,
with the changes of ``../../_base_/mmcls_benchmark.py``.
"""
_base_ = [
    'mmselfsup::benchmarks/classification/imagenet/vit-small-p16_linear-8xb128-coslr-90e_in1k.py',  # noqa: E501
    '../../_base_/mmcls_benchmark.py',
]
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')))
