"""Paired differences between the variants of a comparison, with intervals.

Every variant of a comparison trains with the same seeds, and a seed fixes
the initial weights and the data order for every variant, so the runs are
*paired*: the difference ``variant - reference`` of two runs with the same
seed removes the part of the run-to-run noise that both share. For each
variant against a reference (the baseline, EMA) this module computes, over
the seeds both have:

* the per-seed differences, signed so that **positive is better** (for a
  metric where lower is better the difference is ``reference - variant``);
* their mean and sample standard deviation (``n - 1`` in the denominator);
* a 95 % confidence interval of the mean difference: Student's t,
  ``mean ± t_{0.975, n-1} * sd / sqrt(n)`` (the default), or a percentile
  bootstrap of the mean (``bootstrap`` resamples of the differences with
  replacement, seeded; with few seeds it has few distinct resamples and is
  narrower than the t interval, so the t interval is the default);
* the effect size ``d = mean / sd`` and the number of paired seeds a paired
  two-sided t test at the 5 % level would need to detect a true difference
  of this size with 80 % power: the smallest ``n >= 2`` with
  ``|d| sqrt(n) >= t_{0.975, n-1} + t_{0.8, n-1}`` (the usual iteration
  with central t quantiles; within one seed of the exact noncentral-t
  answer). ``d`` is itself estimated from the same few seeds, so this is a
  planning figure, not a promise.

Seeds that only one of the two variants has (a missing or failed run) are
left out of the pair and listed (:attr:`PairedDifference.unpaired`).

Student's t distribution is computed here (the regularised incomplete beta
function by its continued fraction), so the module needs nothing beyond the
standard library; plots need matplotlib.
"""
from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

#: References every variant is compared with, by label, when present.
REFERENCES = ('baseline', 'EMA')
LEVEL = 0.95
POWER = 0.8
ALPHA = 0.05


# ------------------------------------------------ Student's t distribution
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz,
    Numerical Recipes 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function ``I_x(a, b)``."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f'x must be in [0, 1], got {x}')
    if x in (0.0, 1.0):
        return x
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) +
        a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f'degrees of freedom must be > 0, got {df}')
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom
    (bisection on :func:`t_cdf`, to about 1e-12)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f'p must be in (0, 1), got {p}')
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def seeds_for_power(effect_size: float, alpha: float = ALPHA,
                    power: float = POWER) -> Optional[int]:
    """Paired seeds a two-sided paired t test at level ``alpha`` needs to
    detect a true standardised difference ``effect_size`` (mean / sd of the
    differences) with probability ``power``.

    Returns:
        int or None: The smallest ``n >= 2`` with ``|d| sqrt(n) >=
        t_{1 - alpha/2, n-1} + t_{power, n-1}``; None for ``d = 0`` or NaN
        (no difference to detect).
    """
    d = abs(effect_size)
    if math.isnan(d) or d == 0.0:
        return None
    if math.isinf(d):
        return 2
    z = statistics.NormalDist()
    # The normal approximation is a lower bound (t quantiles are larger).
    n = max(2, math.ceil(((z.inv_cdf(1 - alpha / 2) + z.inv_cdf(power)) /
                          d)**2))
    while d * math.sqrt(n) < (t_quantile(1 - alpha / 2, n - 1) +
                              t_quantile(power, n - 1)):
        n += 1
    return n


# ---------------------------------------------------- paired differences
@dataclass
class PairedDifference:
    """``label - reference`` over the seeds both have (positive: better).

    Attributes:
        label (str): The variant.
        reference (str): What it is compared with.
        seeds (list): The paired seeds, sorted.
        differences (list): The per-seed differences, in seed order.
        mean (float): Their mean.
        sd (float): Their sample standard deviation (NaN for one seed).
        ci95 (tuple): The 95 % confidence interval of the mean (NaN for
            fewer than 2 seeds).
        method (str): ``'t'`` (Student's t) or ``'bootstrap'``.
        effect_size (float): ``mean / sd`` (inf when sd is 0 and the mean
            is not).
        seeds_for_power (int, optional): See :func:`seeds_for_power`.
        unpaired (dict): Variant label -> the seeds only it has.
    """

    label: str
    reference: str
    seeds: List[int]
    differences: List[float]
    mean: float
    sd: float
    ci95: Tuple[float, float]
    method: str = 't'
    effect_size: float = math.nan
    seeds_for_power: Optional[int] = None
    unpaired: Dict[str, List[int]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f'{self.label} - {self.reference}'

    def excludes_zero(self) -> bool:
        """Whether the interval lies on one side of 0."""
        low, high = self.ci95
        return low > 0 or high < 0

    def to_dict(self) -> dict:
        """JSON-ready (NaN and inf -> None)."""

        def clean(v):
            return None if v is None or not math.isfinite(v) else v

        return dict(
            label=self.label, reference=self.reference, seeds=self.seeds,
            differences=self.differences, mean=clean(self.mean),
            sd=clean(self.sd), ci95=[clean(v) for v in self.ci95],
            ci_method=self.method, effect_size=clean(self.effect_size),
            seeds_for_80_power=self.seeds_for_power,
            unpaired_seeds=self.unpaired)


def t_interval(values: Sequence[float],
               level: float = LEVEL) -> Tuple[float, float]:
    """Student's t confidence interval of the mean of ``values``."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


def bootstrap_interval(values: Sequence[float], resamples: int = 10000,
                       seed: int = 0,
                       level: float = LEVEL) -> Tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled
    with replacement ``resamples`` times with ``random.Random(seed)``)."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    rng = random.Random(seed)
    means = sorted(
        statistics.fmean(rng.choices(values, k=n))
        for _ in range(resamples))
    tail = (1 - level) / 2
    low = means[int(math.floor(tail * (resamples - 1)))]
    high = means[int(math.ceil((1 - tail) * (resamples - 1)))]
    return low, high


def paired_difference(values: Dict[int, float], reference: Dict[int, float],
                      label: str, reference_label: str,
                      rule: str = 'greater', bootstrap: int = 0,
                      seed: int = 0) -> PairedDifference:
    """Compare two variants seed by seed.

    Args:
        values (dict): Seed -> the variant's value (e.g. final accuracy).
        reference (dict): Seed -> the reference's value.
        label (str): The variant's name.
        reference_label (str): The reference's name.
        rule (str): ``'greater'`` or ``'less'``: which values are better;
            the differences are signed so that positive is better.
        bootstrap (int): 0: Student's t interval; else the number of
            bootstrap resamples.
        seed (int): Seed of the bootstrap.

    Returns:
        PairedDifference: The statistics over the common seeds.
    """
    if rule not in ('greater', 'less'):
        raise ValueError(f"rule must be 'greater' or 'less', got {rule!r}")
    seeds = sorted(set(values) & set(reference))
    sign = 1.0 if rule == 'greater' else -1.0
    diffs = [sign * (float(values[s]) - float(reference[s])) for s in seeds]
    unpaired = {
        name: sorted(set(mine) - set(other))
        for name, mine, other in ((label, values, reference),
                                  (reference_label, reference, values))
        if set(mine) - set(other)
    }
    mean = statistics.fmean(diffs) if diffs else math.nan
    sd = statistics.stdev(diffs) if len(diffs) > 1 else math.nan
    if bootstrap:
        ci = bootstrap_interval(diffs, bootstrap, seed)
    else:
        ci = t_interval(diffs)
    if math.isnan(sd):
        effect = math.nan
    elif sd > 0:
        effect = mean / sd
    else:
        effect = math.copysign(math.inf, mean) if mean else 0.0
    return PairedDifference(
        label=label, reference=reference_label, seeds=seeds,
        differences=diffs, mean=mean, sd=sd, ci95=ci,
        method='bootstrap' if bootstrap else 't', effect_size=effect,
        seeds_for_power=seeds_for_power(effect), unpaired=unpaired)


def paired_comparisons(finals: Dict[str, Dict[int, float]],
                       rule: str = 'greater', bootstrap: int = 0,
                       references: Sequence[str] = REFERENCES,
                       seed: int = 0) -> List[PairedDifference]:
    """Every variant against each of ``references`` that is present.

    Args:
        finals (dict): Variant label -> (seed -> value), in report order.
        rule (str): ``'greater'`` or ``'less'``.
        bootstrap (int): 0 for Student's t, else bootstrap resamples.
        references (Sequence[str]): Labels compared against.
        seed (int): Seed of the bootstrap.

    Returns:
        list: Against the first reference for every other variant, then
        against the next reference, and so on.
    """
    out = []
    for ref in references:
        if ref not in finals:
            continue
        for label, values in finals.items():
            if label == ref or label in references[:references.index(ref)]:
                continue
            out.append(
                paired_difference(values, finals[ref], label, ref, rule,
                                  bootstrap, seed))
    return out


# ------------------------------------------------------------ presenting
def _num(value: float, digits: int, signed: bool = True) -> str:
    if value is None or math.isnan(value):
        return '-'
    return f'{value:+.{digits}f}' if signed else f'{value:.{digits}f}'


def format_interval(diff: PairedDifference, digits: int = 2) -> str:
    """E.g. ``'SEMA - EMA: +0.48 [-0.90, +1.86], 95 % CI, 5 paired
    seeds'``."""
    low, high = diff.ci95
    how = '95 % CI' if diff.method == 't' else '95 % CI (bootstrap)'
    return (f'{diff.name}: {_num(diff.mean, digits)} '
            f'[{_num(low, digits)}, {_num(high, digits)}], {how}, '
            f'{len(diff.seeds)} paired seed'
            f'{"" if len(diff.seeds) == 1 else "s"}')


def markdown_paired(diffs: Sequence[PairedDifference],
                    digits: int = 2) -> str:
    """A Markdown table of paired differences, then a line for each
    comparison with unpaired seeds.

    Columns: the comparison, the paired seeds, the mean difference and its
    95 % interval, the sd of the differences, whether the interval excludes
    0, the seeds needed for 80 % power at the observed effect size, and the
    per-seed differences.
    """
    if not diffs:
        return ''
    how = "Student's t" if diffs[0].method == 't' else 'bootstrap'
    lines = [
        f'| comparison | paired seeds | mean difference [95 % CI, {how}] | '
        'sd | CI excludes 0 | seeds for 80 % power | per-seed differences |',
        '|---|---|---|---|---|---|---|',
    ]
    notes = []
    for d in diffs:
        low, high = d.ci95
        power = '-' if d.seeds_for_power is None else str(d.seeds_for_power)
        per_seed = ', '.join(f'{s}: {_num(v, digits)}'
                             for s, v in zip(d.seeds, d.differences))
        excludes = '-' if math.isnan(low) else (
            'yes' if d.excludes_zero() else 'no')
        lines.append(
            f'| {d.name} | {len(d.seeds)} | {_num(d.mean, digits)} '
            f'[{_num(low, digits)}, {_num(high, digits)}] | '
            f'{_num(d.sd, digits, signed=False)} | {excludes} | {power} | '
            f'{per_seed} |')
        for name, seeds in d.unpaired.items():
            notes.append(
                f'{d.name}: seed{"s" if len(seeds) > 1 else ""} '
                f'{", ".join(map(str, seeds))} only in {name} (left out, '
                f'{len(d.seeds)} paired seeds).')
    return '\n'.join(lines + ([''] + notes if notes else []))


def plot_paired(diffs: Sequence[PairedDifference], path: str, metric: str,
                title: str = '') -> str:
    """Plot the per-seed differences of each comparison (dots, labelled
    by seed) with their mean and 95 % interval (bar), and the zero line.

    Returns:
        str: ``path`` (a PNG).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.5 + 1.3 * len(diffs), 4))
    for i, d in enumerate(diffs):
        n = len(d.differences)
        xs = [i - 0.15 + (0.3 * k / (n - 1) if n > 1 else 0.15)
              for k in range(n)]
        ax.scatter(xs, d.differences, s=18, color='C0', zorder=3)
        for x, y, s in zip(xs, d.differences, d.seeds):
            ax.annotate(str(s), (x, y), textcoords='offset points',
                        xytext=(3, 2), fontsize=6, color='0.4')
        low, high = d.ci95
        if not math.isnan(low):
            ax.errorbar([i + 0.3], [d.mean], yerr=[[d.mean - low],
                                                   [high - d.mean]],
                        fmt='s', color='C3', capsize=4, zorder=4)
        elif not math.isnan(d.mean):
            ax.plot([i + 0.3], [d.mean], 's', color='C3')
    ax.axhline(0.0, color='k', linewidth=0.8)
    ax.set_xticks(range(len(diffs)))
    ax.set_xticklabels([f'{d.name}\n(n={len(d.seeds)})' for d in diffs],
                       fontsize=8)
    how = 't' if not diffs or diffs[0].method == 't' else 'bootstrap'
    ax.set_ylabel(f'paired difference in final {metric}\n(dots: seeds; '
                  f'square: mean, 95 % CI ({how}))')
    ax.grid(axis='y', alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
