"""Studies of weight averaging behind the paper's figures and the
comparison's baselines. Not part of the hook: no product module imports
this package.

:mod:`~sema_mm.studies.toy` (the paper's 2-D toy task),
:mod:`~sema_mm.studies.decision` (accuracy, calibration and
decision-boundary width of 2-D classifiers),
:mod:`~sema_mm.studies.landscape` (loss landscapes of checkpoints),
:mod:`~sema_mm.studies.sharpness` (Hessian eigenvalue, epsilon-sharpness and
trace of trained weights on fixed training batches),
:mod:`~sema_mm.studies.lookahead` (registers the ``Lookahead`` optimizer)
and :mod:`~sema_mm.studies.lr_schedules` (registers ``SWAConstantLR``).
Each is imported where it is used.
"""
