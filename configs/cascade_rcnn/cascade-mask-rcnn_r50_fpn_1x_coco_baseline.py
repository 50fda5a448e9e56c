"""Cascade Mask R-CNN R-50 FPN 1x on COCO without weight averaging.

mmdet 3.3.0's config unchanged: SGD lr 0.02, batch 16 (8 GPUs x 2), 12
epochs, steps at 8 and 11, single-scale training, bbox and segm AP.
"""
_base_ = 'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
