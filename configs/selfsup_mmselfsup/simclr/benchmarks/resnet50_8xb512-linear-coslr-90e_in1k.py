"""Evaluation of SimCLR pre-training: linear probe: frozen backbone, LARS lr
1.6, 90 epochs.

The same upstream benchmark, with the same changes, as BYOL's
(``../../byol/benchmarks/resnet50_8xb512-linear-coslr-90e_in1k.py``, see
there), with the backbone initialised from a SimCLR pre-training
checkpoint::

    --cfg-options model.backbone.init_cfg.checkpoint=<ckpt>
"""
_base_ = '../../byol/benchmarks/resnet50_8xb512-linear-coslr-90e_in1k.py'
