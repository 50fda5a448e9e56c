"""Cascade Mask R-CNN R-50 FPN multi-scale 3x on COCO, no weight averaging.

mmdet 3.3.0's config (SGD lr 0.02, batch 16, multi-scale training with
shorter sides 640-800) with one change: the validation and test evaluators
report segm AP as well as bbox AP (upstream's, inherited from
``common/ms_3x_coco-instance.py``, is bbox-only although the model predicts
masks).

Upstream wraps the training set in ``RepeatDataset(times=3)``: each of the
12 runner epochs is three passes over COCO train2017 (36 in all), and the
steps at runner epochs 9 and 11 are passes 27 and 33.
"""
_base_ = 'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_ms-3x_coco.py'

custom_imports = dict(imports=['sema_mm'], allow_failed_imports=False)
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = dict(metric=['bbox', 'segm'])
