"""RetinaNet Swin-T FPN 1x on COCO, AdamW, without weight averaging.

mmdet 3.3.0's ``swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py`` trains with
SGD lr 0.01; the SEMA paper (Appendix B.3) trains Swin-T detectors with
AdamW lr 1e-4 and batch 16. The optimizer is replaced whole (``_delete_``:
SGD's ``momentum`` must not reach AdamW) with the settings of upstream's
``swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py``: AdamW lr 1e-4, betas
(0.9, 0.999), weight decay 0.05, none on the position embeddings, relative
position bias tables and norms. Schedule (12 epochs, 500 warm-up
iterations, steps at 8 and 11), data and model are upstream's.
"""
_base_ = 'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py'

custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
optim_wrapper = dict(
    type='OptimWrapper',
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }),
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=0.0001,
        betas=(0.9, 0.999),
        weight_decay=0.05))
