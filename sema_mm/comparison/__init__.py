"""Tools for comparing and analysing weight-averaging methods.

Modules: :mod:`~sema_mm.comparison.variants` (a config -> baseline / EMA / SEMA
/ SWA / Lookahead), :mod:`~sema_mm.comparison.runner` (train them over seeds,
skip finished runs), :mod:`~sema_mm.comparison.launchers` (where runs train:
this process, local processes, slurm jobs),
:mod:`~sema_mm.comparison.jobs` (start and follow them, resubmit failed
ones, one comparison per root), :mod:`~sema_mm.comparison.progress` (one
status line per run), :mod:`~sema_mm.comparison.results` (read the logged
scalars, tables, plots), :mod:`~sema_mm.studies.decision` (accuracy,
calibration and decision-boundary width of 2-D classifiers),
:mod:`~sema_mm.studies.landscape` (loss landscapes of checkpoints),
:mod:`~sema_mm.studies.lookahead` (registers the ``Lookahead`` optimizer)
and :mod:`~sema_mm.studies.lr_schedules` (registers ``SWAConstantLR``). The
last two are imported by the configs of the ``lookahead`` and ``swa``
variants (``custom_imports``), not here: the Lookahead module imports timm
when it is installed, which takes a while.
"""
from .variants import Variant, apply_variant, parse_variant, parse_variants

__all__ = ['Variant', 'apply_variant', 'parse_variant', 'parse_variants']
