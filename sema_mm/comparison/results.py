"""Read what mmengine logged for a set of runs and summarise it.

Each run of a comparison is an mmengine work dir. Its ``<timestamp>/vis_data
/scalars.json`` files (one per start: a resumed run has two) hold one JSON
object per line: training lines carry ``iter`` (``loss``, ``lr``, ...,
``epoch`` for epoch-based loops), validation lines do not (the metrics, with
``step`` = the epoch, or the iteration for iteration-based loops), and
SwitchEMAHook's lines carry ``sema/...`` scalars with ``step`` = the
iteration of the switch (see :mod:`sema_mm.switching.scalars`). Later files
override earlier ones step by step, so a crashed and resumed run reads as
one.

:func:`summarise` reduces the runs of one config (variant -> seed -> curve)
to means and sample standard deviations (``n - 1`` in the denominator) over
seeds; :func:`markdown_table` and :func:`plot_curves` present them.
"""
import glob
import json
import math
import os.path as osp
import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..switching.scalars import PREFIX as SWITCH_PREFIX
from .metric_format import metric_digits

#: Metric keys tried, in order, when none is given.
KNOWN_METRICS = ('accuracy/top1', 'coco/bbox_mAP', 'coco/segm_mAP', 'mIoU',
                 'pascal_voc/mAP', 'accuracy')
#: Keys of a validation line that are not metrics.
NOT_METRICS = ('step', 'epoch', 'iter', 'time', 'data_time', 'memory', 'lr')
#: Substrings of metric names for which lower is better.
LOWER_IS_BETTER = ('loss', 'error', 'err', 'fid', 'mae', 'rmse', 'mse',
                   'perplexity', 'ppl')


@dataclass
class RunLog:
    """The scalars of one run.

    Attributes:
        val (dict): Validation step (epoch or iteration) -> its line.
        train (dict): Epoch (or iteration) -> its last training line.
        switches (dict): Iteration of each SEMA switch -> its ``sema/``
            scalars.
        log_dirs (list): The mmengine log dirs read, oldest first.
    """

    val: Dict[int, dict] = field(default_factory=dict)
    train: Dict[int, dict] = field(default_factory=dict)
    switches: Dict[int, dict] = field(default_factory=dict)
    log_dirs: List[str] = field(default_factory=list)

    def switch_distance(self) -> Dict[float, float]:
        """Switch distance by the switch's epoch (its iteration in
        iteration-based loops)."""
        return {
            row.get('sema/epoch', step): row['sema/switch_distance']
            for step, row in sorted(self.switches.items())
            if 'sema/switch_distance' in row
        }

    def switch_counts(self) -> tuple:
        """(switches, skipped updates) at the last switch, or (0, 0)."""
        if not self.switches:
            return 0, 0
        last = self.switches[max(self.switches)]
        return (int(last.get('sema/switches', 0)),
                int(last.get('sema/skipped_updates', 0)))


def find_log_dirs(work_dir: str) -> List[str]:
    """The mmengine log dirs of ``work_dir`` that have a ``scalars.json``,
    oldest first (their names are start timestamps)."""
    found = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    return sorted(osp.dirname(osp.dirname(p)) for p in found)


def read_scalars(path: str, log: Optional[RunLog] = None) -> RunLog:
    """Add the lines of one ``scalars.json`` to ``log``.

    Args:
        path (str): A ``vis_data/scalars.json``.
        log (RunLog, optional): Lines read so far; later lines override.

    Returns:
        RunLog: ``log`` (or a new one) with the lines added.
    """
    log = RunLog() if log is None else log
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:  # a line cut by a crash
                continue
            if 'iter' in row:
                key = int(row.get('epoch', row['iter']))
                log.train[key] = row
            elif any(k.startswith(SWITCH_PREFIX) for k in row):
                log.switches[int(row['step'])] = row
            elif 'step' in row:
                log.val[int(row['step'])] = row
    return log


def read_run(work_dir: str) -> RunLog:
    """All the scalars of the run in ``work_dir`` (see the module
    docstring)."""
    log = RunLog()
    for log_dir in find_log_dirs(work_dir):
        read_scalars(osp.join(log_dir, 'vis_data', 'scalars.json'), log)
        log.log_dirs.append(log_dir)
    return log


def pick_metric(logs: Sequence[RunLog], metric: Optional[str] = None) -> str:
    """The validation metric to compare.

    Args:
        logs (Sequence[RunLog]): Runs to look at.
        metric (str, optional): A key given by the user; checked.

    Returns:
        str: ``metric``, or the first of :data:`KNOWN_METRICS` that was
        logged, or the first other numeric key (sorted).

    Raises:
        KeyError: When ``metric`` was not logged or no metric was.
    """
    keys = set()
    for log in logs:
        for row in log.val.values():
            keys.update(k for k, v in row.items()
                        if k not in NOT_METRICS and isinstance(v, (int,
                                                                  float)))
    if metric is not None:
        if keys and metric not in keys:
            raise KeyError(f'metric {metric!r} was not logged; logged: '
                           f'{sorted(keys)}')
        return metric
    for known in KNOWN_METRICS:
        if known in keys:
            return known
    if not keys:
        raise KeyError('no validation metric was logged')
    return sorted(keys)[0]


def metric_rule(metric: str) -> str:
    """``'less'`` for losses and errors (by name), else ``'greater'``."""
    name = metric.lower().split('/')[-1]
    return 'less' if any(s in name for s in LOWER_IS_BETTER) else 'greater'


def metric_curve(log: RunLog, metric: str) -> Dict[int, float]:
    """Step -> value of ``metric``, for the steps that logged it."""
    return {
        step: float(row[metric])
        for step, row in sorted(log.val.items()) if metric in row
    }


def loss_curve(log: RunLog, key: str = 'loss') -> Dict[int, float]:
    """Epoch (or iteration) -> the last logged training ``loss``."""
    return {
        step: float(row[key])
        for step, row in sorted(log.train.items()) if key in row
    }


def mean_std(values: Sequence[float]) -> tuple:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), std


@dataclass
class VariantSummary:
    """The seeds of one variant reduced to numbers.

    Attributes:
        label (str): Variant name.
        seeds (list): Seeds with at least one logged value.
        final (tuple): Mean and std of each run's last value.
        best (tuple): Mean and std of each run's best value.
        best_step (int): Step where the seed-mean curve is best.
        curve (dict): Step -> (mean, std) over the runs that logged it.
        loss (dict): Step -> (mean, std) of the training loss.
        final_values (list): Each run's last value, in seed order.
        wall_s (tuple): Mean and std of the training time, if known.
        switch_distance (dict): Epoch (or iteration) of a switch -> (mean,
            std) of the SEMA switch distance; empty without switches.
    """

    label: str
    seeds: List[int]
    final: tuple
    best: tuple
    best_step: Optional[int]
    curve: Dict[int, tuple]
    loss: Dict[int, tuple]
    final_values: List[float]
    wall_s: tuple = (math.nan, math.nan)
    switch_distance: Dict[float, tuple] = field(default_factory=dict)


def _mean_curves(curves: Dict[int, Dict]) -> Dict:
    """Step -> (mean, std) over the curves that have the step."""
    steps = sorted({st for c in curves.values() for st in c})
    return {
        st: mean_std([c[st] for c in curves.values() if st in c])
        for st in steps
    }


def _better(rule: str):
    return max if rule == 'greater' else min


def summarise_variant(label: str, curves: Dict[int, Dict[int, float]],
                      losses: Optional[Dict[int, Dict[int, float]]] = None,
                      rule: str = 'greater',
                      wall_s: Optional[Sequence[float]] = None,
                      distances: Optional[Dict[int, Dict[float,
                                                         float]]] = None
                      ) -> VariantSummary:
    """Reduce the runs of one variant.

    Args:
        label (str): Variant name.
        curves (dict): Seed -> (step -> metric value).
        losses (dict, optional): Seed -> (step -> training loss).
        rule (str): ``'greater'`` or ``'less'``: which values are better.
        wall_s (Sequence[float], optional): Training seconds of each run.
        distances (dict, optional): Seed -> (epoch -> switch distance).

    Returns:
        VariantSummary: The summary (NaN where no run logged anything).
    """
    better = _better(rule)
    seeds = sorted(s for s, c in curves.items() if c)
    finals = [curves[s][max(curves[s])] for s in seeds]
    bests = [better(curves[s].values()) for s in seeds]
    steps = sorted({step for s in seeds for step in curves[s]})
    curve = {
        step: mean_std([curves[s][step] for s in seeds if step in curves[s]])
        for step in steps
    }
    # The best step is looked for where every seed logged a value.
    common = [st for st in steps if all(st in curves[s] for s in seeds)]
    best_step = better(common, key=lambda st: curve[st][0]) \
        if common else None
    return VariantSummary(
        label=label,
        seeds=seeds,
        final=mean_std(finals),
        best=mean_std(bests),
        best_step=best_step,
        curve=curve,
        loss=_mean_curves(losses or {}),
        final_values=finals,
        wall_s=mean_std(wall_s) if wall_s else (math.nan, math.nan),
        switch_distance=_mean_curves(distances or {}))


def gain(summary: VariantSummary, reference: Optional[VariantSummary],
         rule: str = 'greater') -> float:
    """Difference of the final means, signed so that positive is better."""
    if reference is None or summary is reference:
        return math.nan
    diff = summary.final[0] - reference.final[0]
    return diff if rule == 'greater' else -diff


def _fmt(value: float, digits: int) -> str:
    return '-' if value is None or math.isnan(value) else \
        f'{value:.{digits}f}'


def _pm(pair: tuple, digits: int, runs: int = 2) -> str:
    """``mean ± std``; the mean alone for one run (no spread to show)."""
    mean, std = pair
    if math.isnan(mean):
        return '-'
    if runs < 2:
        return f'{mean:.{digits}f}'
    return f'{mean:.{digits}f} ± {std:.{digits}f}'


def _signed(value: float, digits: int) -> str:
    return '' if math.isnan(value) else f'{value:+.{digits}f}'


def summary_digits(summaries: Sequence[VariantSummary]) -> int:
    """Decimals of the metric of ``summaries`` (its final and best
    values; see :func:`~.metric_format.metric_digits`)."""
    return metric_digits(
        [v for s in summaries for v in s.final_values + [s.best[0]]])


def markdown_table(summaries: Sequence[VariantSummary], metric: str,
                   rule: str = 'greater', step_name: str = 'epoch',
                   digits: Optional[int] = None) -> str:
    """A Markdown table of the variants of one config.

    Columns: the variant, the seeds, the final value (the last validation)
    and the best value (each run's best), both as mean ± sample std over
    seeds (the mean alone for a single seed), the step where the seed-mean
    curve is best, the gain of the final mean over the baseline and over
    EMA (positive is better; a column only when that variant is compared),
    and the mean training time of a run.

    Args:
        summaries (Sequence[VariantSummary]): One per variant, in order.
        metric (str): The metric's name (for the header).
        rule (str): ``'greater'`` or ``'less'``.
        step_name (str): ``'epoch'`` or ``'iteration'``.
        digits (int, optional): Decimals shown. Defaults to the metric's
            (see :func:`~.metric_format.metric_digits`): 3 for a metric in
            [0, 1] such as COCO mAP, else 2.

    Returns:
        str: The table, without a trailing newline.
    """
    if digits is None:
        digits = summary_digits(summaries)
    by_label = {s.label: s for s in summaries}
    references = [(name, by_label[label])
                  for name, label in (('baseline', 'baseline'),
                                      ('EMA', 'EMA')) if label in by_label]
    arrow = '↑' if rule == 'greater' else '↓'
    header = (f'| variant | seeds | final {metric} {arrow} | best {metric} | '
              f'best {step_name} | ' +
              ''.join(f'gain vs {name} | ' for name, _ in references) +
              's / run |')
    lines = [header, '|---' * (6 + len(references)) + '|']
    for s in summaries:
        gains = ''.join(f'{_signed(gain(s, ref, rule), digits)} | '
                        for _, ref in references)
        lines.append(
            f'| {s.label} | {len(s.seeds)} | '
            f'{_pm(s.final, digits, len(s.seeds))} | '
            f'{_pm(s.best, digits, len(s.seeds))} | '
            f'{"-" if s.best_step is None else s.best_step} | '
            f'{gains}{_fmt(s.wall_s[0], 0)} |')
    return '\n'.join(lines)


def switch_table(runs: Sequence[Tuple[str, int, RunLog]]) -> str:
    """A Markdown table of the SEMA switches of each run that switched.

    Args:
        runs (Sequence[tuple]): (variant, seed, log) of each run.

    Returns:
        str: The table (switches, skipped EMA updates, first and last switch
        distance per run), or ``''`` when no run switched.
    """
    lines = []
    for label, seed, log in runs:
        distance = log.switch_distance()
        if not distance:
            continue
        switches, skipped = log.switch_counts()
        first, last = distance[min(distance)], distance[max(distance)]
        lines.append(f'| {label} | {seed} | {switches} | {skipped} | '
                     f'{first:.3g} | {last:.3g} |')
    if not lines:
        return ''
    return '\n'.join([
        '| variant | seed | switches | skipped updates | first switch '
        'distance | last switch distance |', '|---|---|---|---|---|---|'
    ] + lines)


def plot_curves(summaries: Sequence[VariantSummary], metric: str, path: str,
                title: str = '', step_name: str = 'epoch') -> str:
    """Plot the metric (mean ± std band over seeds), the training loss and,
    for variants that switch, the SEMA switch distance against the step for
    every variant, like the paper's Figure 1.

    Args:
        summaries (Sequence[VariantSummary]): One per variant.
        metric (str): The metric's name (y-axis label).
        path (str): The PNG to write.
        title (str): Figure title.
        step_name (str): x-axis label.

    Returns:
        str: ``path``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = [True, any(s.loss for s in summaries),
              any(s.switch_distance for s in summaries)]
    fig, axes = plt.subplots(1, sum(panels), figsize=(0.5 + 5.25 * sum(
        panels), 4), squeeze=False)
    axes = iter(axes[0])
    # Each later line a little thinner, so that equal curves (EMA does not
    # change the training loss) stay visible on top of each other.
    # One colour per variant in every panel.
    widths = [max(0.8, 2.6 - 0.5 * i) for i in range(len(summaries))]
    colors = [f'C{i}' for i in range(len(summaries))]
    ax = next(axes)
    for s, lw, color in zip(summaries, widths, colors):
        if not s.curve:
            continue
        steps = sorted(s.curve)
        mean = [s.curve[st][0] for st in steps]
        std = [s.curve[st][1] for st in steps]
        ax.plot(steps, mean, linewidth=lw, color=color,
                label=f'{s.label} (n={len(s.seeds)})')
        ax.fill_between(steps, [m - d for m, d in zip(mean, std)],
                        [m + d for m, d in zip(mean, std)],
                        color=color, alpha=0.2, linewidth=0)
    ax.set_xlabel(step_name)
    ax.set_ylabel(f'val {metric} (mean ± std over seeds)')
    ax.grid(alpha=0.3)
    ax.legend()
    for shown, key, ylabel in (
            (panels[1], 'loss', 'training loss (mean over seeds)'),
            (panels[2], 'switch_distance',
             'SEMA switch distance ||w - ema|| / ||w||')):
        if not shown:
            continue
        ax = next(axes)
        for s, lw, color in zip(summaries, widths, colors):
            curve = getattr(s, key)
            if curve:
                steps = sorted(curve)
                ax.plot(steps, [curve[st][0] for st in steps],
                        linewidth=lw, color=color, label=s.label,
                        marker='o' if key == 'switch_distance' else None)
        ax.set_xlabel(step_name)
        ax.set_ylabel(ylabel)
        ax.set_yscale('log')
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scalar_curve(log: RunLog, key: str) -> Dict[float, float]:
    """Step -> value of any logged scalar ``key``: a validation metric (by
    its step), a training scalar such as ``loss`` or ``lr`` (by epoch, or
    iteration), or a SEMA scalar such as ``sema/switch_distance`` (by the
    switch's epoch, or iteration)."""
    if key.startswith(SWITCH_PREFIX):
        return {
            row.get(f'{SWITCH_PREFIX}epoch', step): float(row[key])
            for step, row in sorted(log.switches.items()) if key in row
        }
    for rows in (log.val, log.train):
        curve = {
            step: float(row[key])
            for step, row in sorted(rows.items())
            if isinstance(row.get(key), (int, float))
        }
        if curve:
            return curve
    return {}


def plot_scalars(logs: Dict[str, RunLog], keys: Sequence[str],
                 path: str, logy: Sequence[str] = ()) -> str:
    """Plot ``keys`` (one panel each) of every run in ``logs`` to a PNG.

    Args:
        logs (dict): Run label -> its log.
        keys (Sequence[str]): Scalars to plot (see :func:`scalar_curve`).
        path (str): The PNG to write.
        logy (Sequence[str]): Keys plotted on a log scale.

    Returns:
        str: ``path``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(0.5 + 5.25 * len(keys),
                                                    4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, log in logs.items():
            curve = scalar_curve(log, key)
            if curve:
                steps = sorted(curve)
                ax.plot(steps, [curve[st] for st in steps], label=label,
                        marker='o' if key.startswith(SWITCH_PREFIX) else None)
        ax.set_xlabel('epoch (iteration for iteration-based runs)')
        ax.set_ylabel(key)
        if key in logy:
            ax.set_yscale('log')
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
