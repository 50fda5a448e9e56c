"""Paired differences in a comparison's report.

Student's t and the power calculation are checked against scipy; the
report against recorded runs with known final values: work dirs written
the way mmengine writes them (``<timestamp>/vis_data/scalars.json``), one
run missing, read back by the comparison's own reader and by
``tools/compare.py --report-only``.
"""
import json
import math
import os
import os.path as osp
import statistics

import pytest

from sema_mm.comparison.paired_stats import (
    bootstrap_interval,
    format_interval,
    paired_difference,
    seeds_for_power,
    t_cdf,
    t_quantile,
)
from sema_mm.comparison.runner import collect, plan_runs, write_report
from sema_mm.comparison.variants import parse_variants

stats = pytest.importorskip('scipy.stats')

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DIGITS = osp.join(REPO, 'configs', 'demo', 'resnet_digits_sema.py')
SEEDS = [3, 4, 5, 6, 7]
# Final top-1 of each recorded run; EMA has no run for seed 7.
FINALS = {
    'baseline': {3: 85.0, 4: 87.5, 5: 86.0, 6: 88.0, 7: 84.0},
    'EMA': {3: 85.5, 4: 87.0, 5: 86.5, 6: 88.5},
    'SEMA': {3: 87.0, 4: 88.5, 5: 86.5, 6: 90.0, 7: 86.5},
}
DIRNAMES = {'baseline': 'baseline', 'EMA': 'ema', 'SEMA': 'sema'}


def test_t_distribution_matches_scipy():
    for df in (1, 2, 3, 4, 7, 19, 30, 200):
        for p in (0.6, 0.8, 0.9, 0.975, 0.995):
            assert t_quantile(p, df) == pytest.approx(
                stats.t.ppf(p, df), rel=1e-9)
            assert t_quantile(1 - p, df) == pytest.approx(
                stats.t.ppf(1 - p, df), rel=1e-9)
        for t in (-8.0, -1.3, 0.0, 0.4, 2.5, 30.0):
            assert t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df),
                                                 abs=1e-12)


def exact_power(n: int, d: float) -> float:
    """Power of the two-sided paired t test at 5 % (noncentral t)."""
    df, nc = n - 1, d * math.sqrt(n)
    crit = stats.t.ppf(0.975, df)
    return 1 - stats.nct.cdf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)


@pytest.mark.parametrize('d', [0.2, 0.5, 0.8, 1.0, 1.5, 2.0, -0.7])
def test_seeds_for_power_is_the_smallest_with_80_percent(d):
    n = seeds_for_power(d)
    assert exact_power(n, abs(d)) >= 0.8
    assert n == 2 or exact_power(n - 1, abs(d)) < 0.8
    assert seeds_for_power(0.0) is None
    assert seeds_for_power(math.nan) is None


def test_paired_difference_by_hand():
    diff = paired_difference(FINALS['SEMA'], FINALS['EMA'], 'SEMA', 'EMA')
    expected = [1.5, 1.5, 0.0, 1.5]
    assert diff.seeds == [3, 4, 5, 6]
    assert diff.differences == expected
    assert diff.unpaired == {'SEMA': [7]}
    assert diff.mean == pytest.approx(statistics.mean(expected))
    assert diff.sd == pytest.approx(statistics.stdev(expected))
    low, high = stats.t.interval(0.95, 3, loc=statistics.mean(expected),
                                 scale=stats.sem(expected))
    assert diff.ci95 == (pytest.approx(low), pytest.approx(high))
    assert diff.excludes_zero() == (low > 0)
    assert diff.seeds_for_power == seeds_for_power(diff.mean / diff.sd)
    assert format_interval(diff) == (
        f'SEMA - EMA: +1.12 [{low:+.2f}, {high:+.2f}], 95 % CI, 4 paired '
        'seeds')
    # A metric where lower is better: positive still means better.
    errors = paired_difference({0: 1.0, 1: 2.0}, {0: 3.0, 1: 3.0}, 'a', 'b',
                               rule='less')
    assert errors.differences == [2.0, 1.0]
    # One pair: a mean, no spread, no interval.
    one = paired_difference({0: 2.0}, {0: 1.0, 1: 5.0}, 'a', 'b')
    assert one.mean == 1.0 and math.isnan(one.sd)
    assert all(math.isnan(v) for v in one.ci95)
    assert one.seeds_for_power is None and one.unpaired == {'b': [1]}


def test_bootstrap_interval_is_seeded_and_inside_the_range():
    values = [1.5, 1.5, 0.0, 1.5, -0.5, 2.0]
    a = bootstrap_interval(values, 4000, seed=1)
    assert a == bootstrap_interval(values, 4000, seed=1)
    assert min(values) <= a[0] < statistics.mean(values) < a[1] <= max(
        values)
    # The percentile interval of the resampled means, as computed with
    # scipy's bootstrap of the same statistic (different random draws).
    ref = stats.bootstrap((values, ), statistics.mean, n_resamples=4000,
                          method='percentile', random_state=0,
                          vectorized=False).confidence_interval
    assert a[0] == pytest.approx(ref.low, abs=0.15)
    assert a[1] == pytest.approx(ref.high, abs=0.15)


def write_recorded_run(work_dir: str, final: float, epochs: int = 3) -> None:
    """A finished run's scalars as mmengine's LocalVisBackend writes them:
    a training line per epoch (``iter`` and ``epoch``), then a validation
    line (``step`` = the epoch); the last validation is ``final``."""
    log_dir = osp.join(work_dir, '20261204_120000', 'vis_data')
    os.makedirs(log_dir)
    with open(osp.join(log_dir, 'scalars.json'), 'w') as f:
        for epoch in range(1, epochs + 1):
            f.write(json.dumps(dict(lr=0.1, loss=1.0 / epoch, epoch=epoch,
                                    iter=10 * epoch, step=10 * epoch)) +
                    '\n')
            value = final - (epochs - epoch) * 3.0
            f.write(json.dumps({'accuracy/top1': value, 'step': epoch}) +
                    '\n')
    with open(osp.join(work_dir, 'finished.json'), 'w') as f:
        json.dump(dict(digest='recorded', wall_s=10.0), f)


@pytest.fixture
def recorded(tmp_path):
    root = str(tmp_path / 'work')
    for label, finals in FINALS.items():
        for seed, value in finals.items():
            write_recorded_run(
                osp.join(root, 'digits', DIRNAMES[label], f'seed{seed}'),
                value)
    return root


def test_report_of_recorded_runs(recorded):
    runs = plan_runs(dict(digits=DIGITS),
                     parse_variants(['baseline', 'ema', 'sema']), SEEDS,
                     recorded)
    res = collect(runs, plot_dir=recorded)[0]
    names = [d.name for d in res.paired]
    assert names == ['EMA - baseline', 'SEMA - baseline', 'SEMA - EMA']
    by_name = {d.name: d for d in res.paired}
    sema_base = by_name['SEMA - baseline']
    expected = [FINALS['SEMA'][s] - FINALS['baseline'][s] for s in SEEDS]
    assert sema_base.seeds == SEEDS
    assert sema_base.differences == pytest.approx(expected)
    low, high = stats.t.interval(0.95, 4, loc=statistics.mean(expected),
                                 scale=stats.sem(expected))
    assert sema_base.ci95 == (pytest.approx(low), pytest.approx(high))
    assert by_name['SEMA - EMA'].seeds == [3, 4, 5, 6]
    assert by_name['EMA - baseline'].unpaired == {'baseline': [7]}

    text = write_report([res], recorded)
    row = next(line for line in text.splitlines()
               if line.startswith('| SEMA - baseline |'))
    assert row.startswith(f'| SEMA - baseline | 5 | '
                          f'{statistics.mean(expected):+.2f} '
                          f'[{low:+.2f}, {high:+.2f}] | '
                          f'{statistics.stdev(expected):.2f} | yes |')
    assert 'SEMA - EMA: seed 7 only in SEMA (left out, 4 paired seeds).' \
        in text
    assert '![digits: paired differences](digits_accuracy_top1_paired.png)' \
        in text
    with open(osp.join(recorded, 'digits_accuracy_top1_paired.png'),
              'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    with open(osp.join(recorded, 'results.json')) as f:
        data = json.load(f)[0]
    stored = {f'{d["label"]} - {d["reference"]}': d for d in data['paired']}
    assert stored['SEMA - baseline']['ci95'] == pytest.approx([low, high])
    assert stored['SEMA - baseline']['differences'] == pytest.approx(
        expected)
    assert stored['SEMA - baseline']['ci_method'] == 't'
    assert stored['SEMA - EMA']['unpaired_seeds'] == {'SEMA': [7]}
    assert stored['SEMA - baseline']['seeds_for_80_power'] == \
        seeds_for_power(statistics.mean(expected) /
                        statistics.stdev(expected))


def test_compare_report_only_with_bootstrap(recorded, capsys):
    """``tools/compare.py --report-only --bootstrap N`` tabulates recorded
    runs with bootstrap intervals; the missing run is shown as such."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'compare_tool', osp.join(REPO, 'tools', 'compare.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    results = tool.main([
        f'digits={DIGITS}', '--seeds', *map(str, SEEDS), '--work-root',
        recorded, '--report-only', '--bootstrap', '2000'
    ])
    out = capsys.readouterr().out
    assert 'digits EMA seed 7' in out  # its state: not started
    diffs = {d.name: d for d in results[0].paired}
    sema_base = diffs['SEMA - baseline']
    assert sema_base.method == 'bootstrap'
    assert sema_base.ci95 == bootstrap_interval(sema_base.differences, 2000)
    with open(osp.join(recorded, 'results.md')) as f:
        text = f.read()
    assert 'mean difference [95 % CI, bootstrap]' in text
    assert 'Not finished (their curves so far are included): digits EMA ' \
        'seed 7' in text
