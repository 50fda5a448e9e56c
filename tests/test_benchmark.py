"""tools/benchmark.py prints its tables from real measurements.

No timing is asserted (speed goals live in the benchmark, not in tests):
the rows name the right models and cases, hold positive times whose ratios
agree with them, and the hook profile times the update and the switch of
the EMA-type hooks only.
"""
import importlib.util
import os.path as osp
import sys

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='module')
def bench():
    spec = importlib.util.spec_from_file_location(
        'sema_benchmark', osp.join(REPO, 'tools', 'benchmark.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cells(row: str):
    return [c.strip() for c in row.strip().strip('|').split('|')]


@pytest.mark.parametrize('ema_device', [None, torch.device('cpu')],
                         ids=['same', 'cpu'])
def test_update_and_switch_rows(bench, ema_device):
    update, switch = map(
        cells,
        bench.bench_model('resnet50', torch.device('cpu'), 0, 1, ema_device))
    assert update[:4] == ['resnet50', '23.5M', '159', 'update']
    fused, mmengine, floor = (float(x) for x in update[4:7])
    assert min(fused, mmengine, floor) > 0
    assert float(update[7].rstrip('x')) == pytest.approx(
        fused / floor, abs=0.01)
    assert float(update[9].rstrip('x')) == pytest.approx(
        mmengine / floor, abs=0.01)
    assert switch[3] == 'switch'


def test_ema_device_option(bench, monkeypatch, capsys):
    """``--ema-device`` reaches the table (named in its header), which keeps
    its columns; with ``--train`` it is refused."""
    argv = ['benchmark.py', '--models', 'resnet50', '--warmup', '0',
            '--repeat', '1', '--ema-device', 'cpu']
    monkeypatch.setattr(sys, 'argv', argv)
    bench.main()
    out = capsys.readouterr().out
    assert 'device: cpu, EMA on: cpu' in out
    rows = [cells(r) for r in out.splitlines() if r.startswith('| resnet50')]
    assert [r[3] for r in rows] == ['update', 'switch']
    assert all(len(r) == 10 for r in rows)
    monkeypatch.setattr(sys, 'argv', ['benchmark.py', '--train',
                                      '--ema-device', 'cpu'])
    with pytest.raises(SystemExit):
        bench.main()
    assert '--ema-device' in capsys.readouterr().err


def test_training_rows_and_hook_profile(bench):
    rows, profile = bench.bench_training(1, 1, profile=True)
    assert [cells(r)[0] for r in rows] == list(bench.TRAIN_CASES)
    assert cells(rows[0])[3] == '1.000x'
    by_case = {cells(r)[0]: cells(r)[1:] for r in profile}
    assert by_case['no EMA'][1:] == ['-', '-']
    for case in ('mmengine EMAHook', 'SwitchEMAHook'):
        per_iter, update, epoch_end = map(float, by_case[case])
        assert 0 < update < per_iter
        assert epoch_end > 0


def test_gpu_training_benchmark_quick(bench):
    """``--train --quick``: the GPU training benchmark's code (real Runners
    with an IterBasedTrainLoop, torchvision's ViT, batches made once on the
    device, the cases in turn) with a tiny ViT on this machine's device."""
    rows, measured = bench.bench_gpu_training(1, 2, 1, quick=True)
    assert [cells(r)[0] for r in rows] == list(bench.GPU_TRAIN_CASES)
    assert cells(rows[0])[3] == '1.000x'
    assert cells(rows[0])[5] == '-'  # no EMA hook to time
    for row in rows[1:]:
        assert float(cells(row)[5]) > 0  # host ms of after_train_iter
    for case in bench.GPU_TRAIN_CASES:
        assert len(measured['rates'][case]) == 1
        assert measured['rates'][case][0] > 0
        if bench.GPU_TRAIN_CASES[case] is not None:  # 2 timed iterations
            assert len(measured['host_ms'][case]) == 2
