"""Exact resume and preemption with the resumable training loops.

The project's demo config (``RandomCrop``) on the digits, 3 epochs of 4
iterations, trained as ``tools/train.py`` trains it (``build_runner``
replaces mmengine's loop): a run stopped by a preemption request mid-epoch
or at an epoch's last iteration, then resumed with ``--resume``, ends with a
final checkpoint bit-identical to the uninterrupted run's (weights, EMA,
optimizer, schedulers, the hook's counters) with ``num_workers`` 0 and 2
(persistent or not) against one shared reference run, since the data no
longer depend on the loader workers. Also: the iteration-based loop, a real
SIGTERM (again during the save), a signal before the first iteration and
one during validation, two
gloo processes stopped by real SIGTERMs at the same iteration and resumed
bit-exactly, a resume on one process instead of two (continues, with a
warning), and a detection config with mmdet's ``AspectRatioBatchSampler``
and random flip.
"""
import argparse
import copy
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, Optional, Sequence

import pytest
import torch
from mmengine.config import Config

import sema_mm  # noqa: F401  (registers the loops and SwitchEMAHook)
import tests.crash  # noqa: F401  (registers the test hooks)
from sema_mm.cli import build_runner, merge_train_args
from sema_mm.resume import PREEMPTED_EXIT_CODE, Preempted
from sema_mm.resume.loops import ResumableIterBasedTrainLoop
from tests.test_tools import TOOLS, free_port, load_ckpt, run_env

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / 'configs' / 'demo' / 'resnet_digits_sema.py'
#: What a resumed checkpoint must hold bit for bit.
STATE_KEYS = ('state_dict', 'ema_state_dict', 'optimizer',
              'param_schedulers')
META_KEYS = ('epoch', 'iter', 'seed', 'switch_ema')


def digits_options(root: str, **extra) -> Dict:
    """3 epochs of 4 iterations (64 images, batch 16), validated at the
    end only."""
    options = {
        'train_dataloader.dataset.data_root': root,
        'val_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.data_root': root,
        'train_dataloader.batch_size': 16,
        'train_cfg.max_epochs': 3,
        'train_cfg.val_interval': 3,
        'log_level': 'WARNING',
    }
    options.update(extra)
    return options


def workers(n: int, persistent: bool) -> Dict:
    return {'train_dataloader.num_workers': n,
            'train_dataloader.persistent_workers': persistent}


def train_here(config: Path, work_dir: Path, options: Dict,
               hooks: Sequence[dict] = (), resume: bool = False):
    """Train ``config`` in this process as ``tools/train.py`` does
    (``--resume`` auto if ``resume``); returns the runner."""
    cfg = Config.fromfile(str(config))
    args = argparse.Namespace(
        config=str(config), work_dir=str(work_dir), amp=False,
        auto_scale_lr=False, resume='auto' if resume else None,
        cfg_options=copy.deepcopy(options), launcher='none')
    codebase = merge_train_args(cfg, args)
    if codebase.setup is not None:
        codebase.setup()
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + list(hooks)
    cfg.experiment_name = f'resume_{uuid.uuid4().hex[:8]}'
    runner = build_runner(cfg)
    runner.train()
    return runner


def preempt_then_resume(config: Path, work_dir: Path, options: Dict,
                        hook: dict) -> str:
    """Train until ``hook`` stops the run (it must raise
    :class:`Preempted`), then resume it to the end; returns the stop
    message."""
    with pytest.raises(Preempted) as stop:
        train_here(config, work_dir, options, hooks=[hook])
    assert stop.value.code == PREEMPTED_EXIT_CODE
    # The loader workers ignore SIGTERM, so the loop ends them itself
    # (Python's exit would otherwise wait for them forever).
    assert not multiprocessing.active_children()
    train_here(config, work_dir, options, hooks=[hook], resume=True)
    assert not multiprocessing.active_children()
    return str(stop.value)


def assert_same_tree(a, b, where: str) -> None:
    """Nested dicts / lists with bit-identical tensors and equal values."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype \
            and torch.equal(a, b), f'{where} differs'
    elif isinstance(a, dict):
        assert sorted(a, key=str) == sorted(b, key=str), where
        for k in a:
            assert_same_tree(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f'{where}[{i}]')
    else:
        assert a == b, f'{where}: {a!r} != {b!r}'


def assert_same_checkpoint(a_path: Path, b_path: Path) -> None:
    a, b = load_ckpt(a_path), load_ckpt(b_path)
    for key in STATE_KEYS:
        assert_same_tree(a[key], b[key], key)
    for key in META_KEYS:
        assert_same_tree(a['meta'][key], b['meta'][key], f'meta.{key}')


def largest_difference(a_path: Path, b_path: Path) -> float:
    a, b = load_ckpt(a_path)['state_dict'], load_ckpt(b_path)['state_dict']
    return max((a[k].double() - b[k].double()).abs().max().item()
               for k in a if a[k].is_floating_point())


@pytest.fixture(scope='module')
def reference(digits, tmp_path_factory) -> Path:
    """The uninterrupted demo run (no loader workers); its final
    checkpoint."""
    work_dir = tmp_path_factory.mktemp('reference')
    runner = train_here(DEMO, work_dir, digits_options(digits))
    assert type(runner.train_loop).__name__ == \
        'ResumableEpochBasedTrainLoop'
    return work_dir / 'epoch_3.pth'


@pytest.mark.parametrize('stop_at, loader, hook', [
    # mid-epoch 2, a real SIGTERM, again while the checkpoint is saved
    (6, workers(0, False), dict(signal='SIGTERM', again_while_saving=True)),
    # the last iteration of epoch 2
    (8, workers(0, False), dict()),
    (5, workers(2, True), dict()),
    (7, workers(2, False), dict(signal='SIGUSR1')),
], ids=['sigterm-mid-epoch', 'epoch-end', 'persistent-workers',
        'workers-sigusr1'])
def test_preempted_demo_resumes_bit_exactly(digits, reference, tmp_path,
                                            stop_at, loader, hook):
    options = digits_options(digits, **loader)
    message = preempt_then_resume(
        DEMO, tmp_path, options,
        dict(type='PreemptAtIteration', iteration=stop_at, **hook))
    assert f'stopped after iteration {stop_at} ' in message
    saved = load_ckpt(tmp_path / f'iter_{stop_at}.pth')
    assert (saved['meta']['epoch'], saved['meta']['iter']) == (1, stop_at)
    assert_same_checkpoint(reference, tmp_path / 'epoch_3.pth')


def test_signal_before_the_first_iteration(digits, reference, tmp_path):
    """SIGTERM while the hooks prepare training: one iteration runs, the
    checkpoint is written, and the resumed run ends as the reference."""
    message = preempt_then_resume(
        DEMO, tmp_path, digits_options(digits),
        dict(type='PreemptAtIteration', iteration=0, signal='SIGTERM'))
    assert 'Preempted (SIGTERM): stopped after iteration 1 ' in message
    assert_same_checkpoint(reference, tmp_path / 'epoch_3.pth')


def test_signal_during_validation(digits, reference, tmp_path):
    """SIGTERM during the validation after epoch 1: validation ends, the
    next training iteration runs, the checkpoint is written, and the
    resumed run (validating every epoch) ends as the reference."""
    options = digits_options(digits, **{'train_cfg.val_interval': 1})
    message = preempt_then_resume(
        DEMO, tmp_path, options,
        dict(type='PreemptAtIteration', iteration=4, signal='SIGTERM',
             in_validation=True))
    assert 'Preempted (SIGTERM): stopped after iteration 5 ' in message
    assert_same_checkpoint(reference, tmp_path / 'epoch_3.pth')


def test_iteration_loop_resumes_mid_epoch_bit_exactly(digits, tmp_path):
    """IterBasedTrainLoop over a finite sampler (10 iterations, passes of
    4): stopped at iteration 6 (mid-pass), resumed, equal to the
    uninterrupted run; checkpoints by iteration."""
    options = digits_options(
        digits, **{
            'train_cfg': dict(_delete_=True, by_epoch=False, max_iters=10,
                              val_interval=10),
            'param_scheduler.0.by_epoch': False,
            'param_scheduler.0.convert_to_iter_based': False,
            'param_scheduler.0.T_max': 10, 'param_scheduler.0.end': 10,
            'default_hooks.checkpoint.by_epoch': False,
            'default_hooks.checkpoint.interval': 10,
            'log_processor': dict(_delete_=True, by_epoch=False),
            'custom_hooks.0.switch_by_epoch': False,
            'custom_hooks.0.switch_interval': 4,
        })
    full = train_here(DEMO, tmp_path / 'full', options)
    assert isinstance(full.train_loop, ResumableIterBasedTrainLoop)
    message = preempt_then_resume(
        DEMO, tmp_path / 'part', options,
        dict(type='PreemptAtIteration', iteration=6))
    assert 'stopped after iteration 6 ' in message
    assert_same_checkpoint(tmp_path / 'full' / 'iter_10.pth',
                           tmp_path / 'part' / 'iter_10.pth')


# ------------------------------------------------------------ two processes
def start_rank(rank: int, config: Path, work_dir: Path, port: int,
               options: Sequence[str], log: Path) -> subprocess.Popen:
    """One rank of a 2-process gloo job, as srun starts a task (its own
    process group: it and its loader workers get the signals)."""
    env = run_env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2',
                  MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    cmd = [sys.executable, str(TOOLS / 'train.py'), str(config),
           '--launcher', 'pytorch', '--work-dir', str(work_dir),
           '--cfg-options', *options]
    return subprocess.Popen(cmd, env=env, stdout=log.open('w'),
                            stderr=subprocess.STDOUT, start_new_session=True)


def run_two(config: Path, work_dir: Path, options: Sequence[str],
            tmp_path: Path, *extra: str, hold: Optional[Path] = None):
    """Run both ranks; with ``hold``, wait until both are held there
    (:class:`tests.crash.HoldAtIteration`), send SIGTERM to each rank's
    process group, then release them. Returns the exit statuses and
    outputs."""
    port = free_port()
    logs = [tmp_path / f'{work_dir.name}_rank{r}.log' for r in (0, 1)]
    procs = [start_rank(r, config, work_dir, port, list(options) +
                        list(extra), logs[r]) for r in (0, 1)]
    try:
        if hold is not None:
            deadline = time.time() + 300
            while not all((hold / f'rank{r}.waiting').exists()
                          for r in (0, 1)):
                assert time.time() < deadline, logs[0].read_text()[-3000:]
                assert all(p.poll() is None for p in procs), \
                    logs[0].read_text()[-3000:] + logs[1].read_text()[-3000:]
                time.sleep(0.1)
            for p in procs:
                os.killpg(p.pid, signal.SIGTERM)
            (hold / 'go').touch()
        codes = [p.wait(timeout=400) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    return codes, [log.read_text() for log in logs]


def test_two_processes_stop_together_on_sigterm_and_resume(digits, tmp_path):
    """Both ranks (and their persistent loader workers) get a real SIGTERM
    while held after iteration 5: both stop after iteration 6, the
    checkpoint is written, the exit status is PREEMPTED_EXIT_CODE; resumed
    with two processes the run ends bit-identical to an uninterrupted
    2-process run; resumed on one process it continues (not
    bit-identical), saying so."""
    hold = tmp_path / 'hold'
    hold.mkdir()
    config = tmp_path / 'demo_held.py'
    config.write_text(
        f'_base_ = [{str(DEMO)!r}]\n'
        "custom_imports = dict(imports=['sema_mm', 'tests.crash'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='SwitchEMAHook', momentum=0.1), "
        f"dict(type='HoldAtIteration', iteration=5, folder={str(hold)!r})]\n")
    options = digits_options(digits, **workers(2, True), **{
        'train_dataloader.batch_size': 8})  # 64 / (2 x 8): 4 per epoch
    cli = [f'{k}={v}' for k, v in options.items()]
    codes, outs = run_two(DEMO, tmp_path / 'full', cli, tmp_path)
    assert codes == [0, 0], outs[0][-3000:]
    codes, outs = run_two(config, tmp_path / 'part', cli, tmp_path,
                          hold=hold)
    assert codes == [PREEMPTED_EXIT_CODE] * 2, outs[0][-3000:]
    # (the other ranks log errors only)
    assert 'Preempted (SIGTERM): stopped after iteration 6 ' in outs[0]
    assert (tmp_path / 'part' / 'iter_6.pth').is_file()
    assert (tmp_path / 'part' / 'last_checkpoint').read_text() == str(
        tmp_path / 'part' / 'iter_6.pth')
    shutil.copytree(tmp_path / 'part', tmp_path / 'one')
    codes, outs = run_two(config, tmp_path / 'part', cli, tmp_path,
                          '--resume')
    assert codes == [0, 0], outs[0][-3000:]
    assert_same_checkpoint(tmp_path / 'full' / 'epoch_3.pth',
                           tmp_path / 'part' / 'epoch_3.pth')

    # The same checkpoint on one process: continues, not bit-identical.
    train_here(config, tmp_path / 'one', options, resume=True)
    logs = ''.join(p.read_text() for p in (tmp_path / 'one').glob('*/*.log'))
    assert "Resuming a checkpoint written with {'world_size': 2" in logs
    assert load_ckpt(tmp_path / 'one' / 'epoch_3.pth')['meta']['iter'] > 6


# ---------------------------------------------------------------- detection
def test_detection_resumes_mid_epoch_bit_exactly(tmp_path):
    """RetinaNet (SEMA) on synthetic COCO: mmdet's AspectRatioBatchSampler
    and RandomFlip, 2 epochs of 2 iterations; stopped after iteration 3,
    resumed without a seed in the config (mmdet's configs set none: the
    checkpoint's seed must rebuild the sampler), it ends bit-identical."""
    pytest.importorskip('mmdet')
    from sema_mm.datasets.detection_smoke import smoke_cfg_options
    from sema_mm.datasets.synthetic_coco import make_synthetic_coco
    root = str(tmp_path / 'coco')
    make_synthetic_coco(root, num_train=4, num_val=2, size=64, seed=0)
    config = REPO / 'configs' / 'retinanet' / \
        'retinanet_r50_fpn_2x_coco_sema.py'
    options = smoke_cfg_options(Config.fromfile(str(config)), root)
    options.update({'log_level': 'WARNING',
                    'default_hooks.logger.interval': 50})
    seeded = dict(options, **{'randomness.seed': 0})
    full = train_here(config, tmp_path / 'full', seeded)
    assert type(full.train_dataloader.batch_sampler.batch_sampler
                ).__name__ == 'AspectRatioBatchSampler'
    hook = dict(type='PreemptAtIteration', iteration=3)
    with pytest.raises(Preempted):
        train_here(config, tmp_path / 'part', seeded, hooks=[hook])
    resumed = train_here(config, tmp_path / 'part', options, hooks=[hook],
                         resume=True)
    assert resumed.seed == 0
    assert_same_checkpoint(tmp_path / 'full' / 'epoch_2.pth',
                           tmp_path / 'part' / 'epoch_2.pth')
