"""How many decimals a compared metric is shown with.

A metric reported as a fraction in [0, 1] (COCO's ``coco/bbox_mAP``, recall)
is shown with 3 decimals, so that 0.017 does not read as 0.02 and a gain of
0.004 does not read as +0.00; a metric in percent (mmpretrain's
``accuracy/top1``) or any other scale is shown with 2. The same choice is
used in the tables of ``tools/compare.py`` and in its progress lines.
"""
import math
from typing import Iterable

#: Decimals of a metric whose values lie in [0, 1].
FRACTION_DIGITS = 3
#: Decimals of any other metric (e.g. a percentage).
DEFAULT_DIGITS = 2


def metric_digits(values: Iterable[float]) -> int:
    """Decimals for a metric with these logged ``values`` (NaN ignored):
    3 when every value lies in [0, 1] (and not all are 0), else 2."""
    finite = [abs(v) for v in values if v is not None and not math.isnan(v)]
    if finite and 0 < max(finite) <= 1:
        return FRACTION_DIGITS
    return DEFAULT_DIGITS


def format_metric(value: float) -> str:
    """One metric value with the decimals :func:`metric_digits` picks."""
    return f'{value:.{metric_digits([value])}f}'
