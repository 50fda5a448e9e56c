"""What ``tools/compare.py`` prints: decimals per metric (tables and paired
differences), one seed, missing reference variants, failed runs, bad
variants and the plain heartbeat."""
import io
import subprocess
import sys

import pytest

from sema_mm.comparison.metric_format import format_metric, metric_digits
from sema_mm.comparison.paired_stats import paired_comparisons
from sema_mm.comparison.progress import ProgressBoard
from sema_mm.comparison.results import markdown_table, summarise_variant
from sema_mm.comparison.run_errors import last_exception
from sema_mm.comparison.runner import ConfigResult, write_report
from tests.test_compare import write_toy_config
from tests.test_compare_launchers import compare_cmd, run_compare


def test_fraction_metrics_get_three_decimals():
    assert metric_digits([0.017, 0.4]) == 3  # COCO mAP
    assert metric_digits([17.5, 99.0]) == 2  # accuracy in %
    assert metric_digits([0.0, 0.0]) == 2
    assert format_metric(0.017) == '0.017'
    assert format_metric(71.234) == '71.23'
    base = summarise_variant('baseline', {0: {1: 0.010, 2: 0.017}})
    sema = summarise_variant('SEMA', {0: {1: 0.012, 2: 0.021}})
    rows = [r.split(' | ') for r in
            markdown_table([base, sema], 'coco/bbox_mAP').splitlines()]
    assert rows[3][2] == '0.021' and rows[3][5] == '+0.004'


def test_paired_differences_of_a_fraction_metric_get_three_decimals(
        tmp_path):
    """The report's paired differences use the metric's decimals too: a
    COCO mAP gain of 0.005 does not read as +0.01 or +0.00."""
    finals = {'baseline': {0: 0.010, 1: 0.012}, 'SEMA': {0: 0.014, 1: 0.018}}
    summaries = [
        summarise_variant(label, {s: {1: v} for s, v in values.items()})
        for label, values in finals.items()
    ]
    metric = 'coco/bbox_mAP'
    res = ConfigResult('toy', metric, 'greater', 'epoch', summaries,
                       markdown_table(summaries, metric),
                       paired=paired_comparisons(finals))
    text = write_report([res], str(tmp_path))
    row = next(line for line in text.splitlines()
               if line.startswith('| SEMA - baseline |'))
    assert row.split(' | ')[2].startswith('+0.005 [')
    assert '0: +0.004, 1: +0.006' in row


def test_one_seed_and_no_ema_column():
    """One seed: the mean alone, no '± 0.00'; no EMA in the grid: no
    'gain vs EMA' column."""
    base = summarise_variant('baseline', {0: {1: 50.0, 2: 60.0}})
    sema = summarise_variant('SEMA', {0: {1: 55.0, 2: 62.5}})
    table = markdown_table([base, sema], 'accuracy/top1')
    assert '±' not in table
    assert 'gain vs EMA' not in table and 'gain vs baseline' in table
    head, rule, _, row = table.splitlines()
    assert head.count('|') == rule.count('|') == row.count('|')
    assert row.split(' | ')[2] == '62.50'
    assert row.split(' | ')[5] == '+2.50'
    two = summarise_variant('EMA', {0: {1: 50.0}, 1: {1: 52.0}})
    assert '51.00 ± 1.41' in markdown_table([two], 'acc')


def test_last_exception_of_a_log(tmp_path):
    log = tmp_path / 'train.log'
    with open(log, 'w') as f:
        subprocess.run([sys.executable, '-c',
                        'print("epoch 1 done")\n'
                        'raise ValueError("bad thing\\nsecond line")'],
                       stdout=f, stderr=subprocess.STDOUT)
    assert last_exception(str(log)) == 'ValueError: bad thing'
    ranked = tmp_path / 'ranked.log'
    ranked.write_text('[rank0]: Traceback (most recent call last):\n'
                      '[rank0]:   File "x.py", line 1, in <module>\n'
                      '[rank0]: RuntimeError: nccl timeout\n')
    assert last_exception(str(ranked)) == 'RuntimeError: nccl timeout'
    assert last_exception(str(tmp_path / 'none.log')) is None


def test_heartbeat_in_plain_mode():
    out = io.StringIO()
    board = ProgressBoard({'a': 'toy SEMA seed 0'}, stream=out,
                          mode='plain', heartbeat_s=0.0)
    board.update('a', state='running', total=4, unit='epoch')
    first = out.getvalue()
    board.update('a', done=1, values={'accuracy/top1': 0.5})
    beat = out.getvalue()[len(first):]
    assert beat.startswith('compare: 1 runs: 0 done, 1 running')
    assert 'toy SEMA seed 0  running  epoch 2/4  accuracy/top1 0.500' \
        in beat
    quiet = io.StringIO()
    board = ProgressBoard({'a': 'x'}, stream=quiet, mode='plain',
                          heartbeat_s=None)
    board.update('a', state='running')
    board.update('a', done=1)
    assert quiet.getvalue().count('\n') == 1


def test_unknown_variant_is_a_usage_error(tmp_path):
    proc = run_compare(compare_cmd(write_toy_config(tmp_path),
                                   tmp_path / 'w', '--variants', 'sam'),
                       tmp_path)
    assert proc.returncode == 2
    assert "--variants: unknown variant 'sam'" in proc.stdout
    assert 'Traceback' not in proc.stdout


def test_every_run_failing_is_a_clear_error(tmp_path):
    cmd = compare_cmd(write_toy_config(tmp_path), tmp_path / 'w',
                      '--variants', 'baseline', 'sema', '--seeds', '0',
                      '--cfg-options', 'model.type=NoSuchModel')
    proc = run_compare(cmd, tmp_path)
    out = proc.stdout
    assert proc.returncode == 1, out[-4000:]
    assert 'Traceback' not in out and 'KeyError: \'no validation' not in out
    assert '2 run(s) failed' in out
    assert 'toy SEMA seed 0: KeyError' in out and 'NoSuchModel' in out
    assert 'No run logged a validation metric, so there is no table' in out


@pytest.mark.parametrize('launcher', ['local'])
def test_failed_job_names_its_exception(tmp_path, launcher):
    cmd = compare_cmd(write_toy_config(tmp_path), tmp_path / 'w',
                      '--variants', 'sema', '--seeds', '0', '--launcher',
                      launcher, '--cfg-options', 'model.type=NoSuchModel')
    out = run_compare(cmd, tmp_path).stdout
    log = tmp_path / 'w' / 'toy' / 'sema' / 'seed0' / 'train.log'
    assert f'exit status 1; log: {log}; it raised KeyError: ' in out, out
