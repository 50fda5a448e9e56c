"""SEMA in mmengine's logs: every switch's scalars reach the visualizer at
its iteration, and match a recomputation from the weights; the comparison
report and ``tools/analysis/plot_log.py`` show them."""
import json
import math

import pytest

from sema_mm.comparison.results import (
    plot_scalars,
    read_run,
    scalar_curve,
    switch_table,
)
from tests.test_analysis import load_tool
from tests.toy import iteration_loop
from tests.utils import Probe, make_runner, sema_hook


def switch_rows(runner):
    """The scalars.json lines that carry SwitchEMAHook's scalars."""
    path = f'{runner.log_dir}/vis_data/scalars.json'
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if 'sema/switch_distance' in r]


def distance(pre, post):
    num = sum(float((pre[k] - post[k]).pow(2).sum()) for k in pre)
    den = sum(float(pre[k].pow(2).sum()) for k in pre)
    return math.sqrt(num / den)


@pytest.mark.parametrize('hook_cfg, loop, expected', [
    (dict(), {}, [(8, 1.0), (16, 2.0), (24, 3.0)]),
    (dict(switches_per_epoch=2), {},
     [(4, 0.5), (8, 1.0), (12, 1.5), (16, 2.0), (20, 2.5), (24, 3.0)]),
    (dict(switch_by_epoch=False, switch_interval=5),
     iteration_loop(max_iters=12, milestone=6, checkpoint_interval=6),
     [(5, None), (10, None)]),
])
def test_every_switch_is_logged_at_its_iteration(tmp_path, hook_cfg, loop,
                                                 expected):
    before, after = Probe('HIGHEST'), Probe('LOWEST')
    cfg = dict(train_cfg=dict(by_epoch=True, max_epochs=3, val_interval=1))
    cfg.update(loop)
    runner = make_runner(
        tmp_path, hooks=[before, after],
        custom_hooks=[dict(type='SwitchEMAHook', momentum=0.2, **hook_cfg)],
        **cfg)
    runner.train()
    rows = switch_rows(runner)
    assert [(r['step'], r.get('sema/epoch')) for r in rows] == expected
    assert [r['sema/switches'] for r in rows] == list(
        range(1, len(expected) + 1))
    assert all(r['sema/skipped_updates'] == 0 for r in rows)
    assert sema_hook(runner).num_switches == len(expected)
    for row in rows:
        i = row['step'] - 1  # the switch's iteration, 0-based
        at_epoch_end = hook_cfg == {} or row['step'] % 8 == 0 and loop == {}
        post = (after.after_epoch[i // 8] if at_epoch_end else
                after.after_iter[i])
        expected_distance = distance(before.after_iter[i], post)
        assert row['sema/switch_distance'] == pytest.approx(
            expected_distance, rel=1e-4)
        assert row['sema/switch_distance'] > 0


def test_report_and_plot_log_show_switches(tmp_path, capsys):
    runner = make_runner(
        tmp_path / 'sema',
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1))
    runner.train()
    log = read_run(str(tmp_path / 'sema'))
    assert sorted(log.val) == [1, 2]  # switch lines are not validation
    assert sorted(scalar_curve(log, 'sema/switch_distance')) == [1.0, 2.0]
    assert log.switch_counts() == (2, 0)
    table = switch_table([('SEMA', 0, log)])
    assert table.splitlines()[2].startswith('| SEMA | 0 | 2 | 0 |')
    png = plot_scalars({'sema': log}, ['loss', 'sema/switch_distance'],
                       str(tmp_path / 'direct.png'))
    assert open(png, 'rb').read(4) == b'\x89PNG'
    load_tool('plot_log').main(
        [str(tmp_path / 'sema'), '--out', str(tmp_path / 'curves.png')])
    assert 'toy/accuracy, loss, sema/switch_distance' in capsys.readouterr(
    ).out
    assert (tmp_path / 'curves.png').read_bytes()[:4] == b'\x89PNG'


def test_plot_log_labels_runs_of_the_same_name():
    """The runs of a comparison all end in ``seed<s>``: each is labelled by
    the part of its path that tells it apart, so none is dropped."""
    labels = load_tool('plot_log').run_labels(
        ['work/digits/sema/seed0', 'work/digits/baseline/seed0/',
         'other/sema'])
    assert labels == ['sema/seed0', 'baseline/seed0', 'other/sema']
