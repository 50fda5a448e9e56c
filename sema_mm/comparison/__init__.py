"""Comparing weight-averaging methods on a config: the grid runner and
what it needs. Not part of the hook: no product module (hooks, ema,
switching, sharding, compat, cli, datasets, selfsup) imports this package.

Modules: :mod:`~sema_mm.comparison.variants` (a config -> baseline / EMA /
SEMA / SWA / Lookahead), :mod:`~sema_mm.comparison.runner` (train them over
seeds, skip finished runs), :mod:`~sema_mm.comparison.launchers` (where runs
train: this process, local processes, slurm jobs),
:mod:`~sema_mm.comparison.jobs` (start and follow them, resubmit failed
ones, one comparison per root), :mod:`~sema_mm.comparison.job_wrapper` (one
run as a locked job, run by path), :mod:`~sema_mm.comparison.progress` (one
status line per run), :mod:`~sema_mm.comparison.results` (read the logged
scalars, tables, plots), with :mod:`~sema_mm.comparison.metric_format`
(decimals per metric), :mod:`~sema_mm.comparison.run_errors` (the exception
a failed run's log ends with) and :mod:`~sema_mm.comparison.slurm_cpus`
(CPUs per slurm task that fit the partition),
:mod:`~sema_mm.comparison.paired_stats` (paired differences between
variants: intervals, power) and :mod:`~sema_mm.comparison.report_args` (the
report options of the tools). With ``sharpness`` the runner measures each
run's final weights with :mod:`sema_mm.studies.sharpness`. The
``lookahead`` and ``swa`` variants' configs import
:mod:`sema_mm.studies.lookahead` and
:mod:`sema_mm.studies.lr_schedules` (``custom_imports``), not this package:
the Lookahead module imports timm when it is installed, which takes a
while.
"""
from .variants import Variant, apply_variant, parse_variant, parse_variants

__all__ = ['Variant', 'apply_variant', 'parse_variant', 'parse_variants']
