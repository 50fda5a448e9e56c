"""Evaluation of MoCo v3 pre-training: linear probe: frozen ViT-S, SGD lr 12,
cosine LR, 90 epochs.

Upstream
``mmpretrain::mocov3/benchmarks/vit-small-p16_8xb128-linear-coslr-90e_in1k.py``,
unchanged apart from importing sema_mm. Its backbone starts from a pre-training
checkpoint, given on the command line::

    --cfg-options model.backbone.init_cfg.checkpoint=<ckpt>

(``init_cfg=dict(type='Pretrained', prefix='backbone.')`` upstream). The
pre-training checkpoint's ``state_dict`` holds the EMA weights (for
SwitchEMAHook: the weights after the last switch).
"""
_base_ = 'mmpretrain::mocov3/benchmarks/vit-small-p16_8xb128-linear-coslr-90e_in1k.py'  # noqa: E501
custom_imports = dict(
    imports=['sema_mm'], allow_failed_imports=False)
