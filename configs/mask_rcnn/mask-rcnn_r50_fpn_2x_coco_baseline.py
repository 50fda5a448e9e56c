"""Mask R-CNN R-50 FPN 2x on COCO without weight averaging.

mmdet 3.3.0's config unchanged: SGD lr 0.02, momentum 0.9, weight decay
1e-4, batch 16 (8 GPUs x 2), 24 epochs, steps at 16 and 22, bbox and segm
AP. The baseline of the SEMA paper's Table 6, row "Mask R-CNN (2x)".
"""
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_2x_coco.py'

custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
