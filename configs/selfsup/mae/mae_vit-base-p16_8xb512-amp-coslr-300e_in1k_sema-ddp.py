"""MAE, ViT-B/16, AdamW, 300 epochs (batch 8 x 512): SEMA with
``FlexibleRunner`` and ``DDPStrategy``: the DDP reference of
``..._sema-fsdp.py`` (same model, data, hook and runner; every rank holds
the whole model, optimizer state and EMA).
"""
_base_ = './mae_vit-base-p16_8xb512-amp-coslr-300e_in1k_sema.py'

runner_type = 'FlexibleRunner'
strategy = dict(type='DDPStrategy')
