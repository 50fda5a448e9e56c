"""Helpers for the classification and self-supervised configs.

* :class:`CopyTeacherHook`: the "Basic" variant of self-teaching methods
  (MoCo v2, BYOL, MoCo v3): the model's momentum teacher copies the online
  encoder at every update instead of averaging it.
* :func:`backbone_state_dict`: the (EMA) backbone of a pre-training
  checkpoint, as the evaluation configs load it.
* :mod:`sema_mm.compat.mmselfsup` (imported by the mmselfsup configs
  only): lets mmselfsup 1.0.0 build its training loop with mmengine 0.10.7.

Import it with ``custom_imports=dict(imports=['sema_mm', 'sema_mm.selfsup'])``.
"""
from .checkpoint import backbone_state_dict
from .copy_teacher_hook import CopyTeacherHook

__all__ = ['CopyTeacherHook', 'backbone_state_dict']
