"""Tools for comparing and analysing weight-averaging methods.

Importing this package registers the ``Lookahead`` optimizer
(:mod:`~sema_mm.analysis.lookahead`) and the ``SWAConstantLR`` scheduler
(:mod:`~sema_mm.analysis.schedulers`) in mmengine's root registries, which
the ``lookahead`` and ``swa`` variants of :mod:`~sema_mm.analysis.variants`
need (their configs import it through ``custom_imports``).

Modules: :mod:`~sema_mm.analysis.variants` (a config -> baseline / EMA / SEMA
/ SWA / Lookahead), :mod:`~sema_mm.analysis.compare` (train them over seeds,
skip finished runs), :mod:`~sema_mm.analysis.results` (read the logged
scalars, tables, plots), :mod:`~sema_mm.analysis.decision` (accuracy,
calibration and decision-boundary width of 2-D classifiers) and
:mod:`~sema_mm.analysis.landscape` (loss landscapes of checkpoints).
"""
from .lookahead import Lookahead, PlainLookahead
from .schedulers import SWAConstantLR
from .variants import Variant, apply_variant, parse_variant, parse_variants

__all__ = [
    'Lookahead', 'PlainLookahead', 'SWAConstantLR', 'Variant',
    'apply_variant', 'parse_variant', 'parse_variants'
]
