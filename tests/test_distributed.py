"""Distributed SEMA and crash safety with real processes (gloo on CPU).

Every rank's EMA and weights stay bit-identical after each switch with 2 and
3 processes and across two simulated nodes; the optional cross-rank check
names the first differing parameter; a run killed with SIGKILL at an
arbitrary iteration and restarted with ``--resume`` ends bit-identical to an
uninterrupted one (1 and 2 processes, epoch- and iteration-based loops); a
checkpoint write killed half-way never leaves a truncated checkpoint.
"""
import io
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from sema_mm.cli.resume import resolve_auto_resume
from sema_mm.compat.atomic_checkpoints import AtomicLocalBackend
from tests.test_tools import (
    TOOLS,
    assert_same_tensors,
    free_port,
    load_ckpt,
    probe,
    run,
    run_env,
    write_config,
)
from tests.toy import iteration_loop

IMPORTS = dict(imports=['tests.toy', 'tests.rank_probe', 'tests.crash'],
               allow_failed_imports=False)
LOUD = dict(custom_imports=IMPORTS, log_level='INFO')


def config(tmp_path: Path, hooks=(), **overrides) -> Path:
    """The toy SEMA config with the rank probe and extra hooks."""
    return write_config(
        tmp_path, **LOUD,
        custom_hooks=[dict(type='SwitchEMAHook', momentum=0.2,
                           check_ranks=True),
                      dict(type='RankProbeHook')] + list(hooks),
        **overrides)


def train(cfg: Path, work_dir: Path, procs: int = 1, *args: str,
          check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """``tools/train.py`` (procs=1) or ``tools/dist_train.sh``."""
    if procs == 1:
        cmd = [sys.executable, str(TOOLS / 'train.py'), str(cfg)]
    else:
        cmd = ['bash', str(TOOLS / 'dist_train.sh'), str(cfg), str(procs)]
        env.setdefault('PORT', str(free_port()))
    cmd += ['--work-dir', str(work_dir), *args]
    if check:
        return run(cmd, cwd=cfg.parent, timeout=240, **env)
    return subprocess.run(cmd, cwd=cfg.parent, env=run_env(**env),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=240)


def assert_ranks_identical(work_dir: Path, ranks: int, epochs: int) -> None:
    for epoch in range(1, epochs + 1):
        first = probe(work_dir, 0, epoch)
        assert first['num_switches'] == epoch
        for rank in range(1, ranks):
            other = probe(work_dir, rank, epoch)
            assert other['world_size'] == ranks
            assert_same_tensors(first['model'], other['model'])
            assert_same_tensors(first['ema'], other['ema'])


def test_three_processes_stay_identical(tmp_path):
    cfg = config(tmp_path, train_dataloader=dict(
        batch_size=2, num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=True),
        collate_fn=dict(type='toy_collate'),
        dataset=dict(type='ToyDataset', num_samples=36)))
    out = train(cfg, tmp_path / 'w', 3).stdout
    assert 'switch 2 at the end of epoch 2' in out
    assert_ranks_identical(tmp_path / 'w', 3, 2)


def test_check_ranks_with_averaged_statistics(tmp_path):
    """With buffers='average' each rank's EMA of the BN statistics differs
    until the switch averages them over ranks; check_ranks compares the
    EMAs after that, so it raises no false alarm and the ranks agree."""
    cfg = write_config(
        tmp_path, **LOUD,
        custom_hooks=[dict(type='SwitchEMAHook', momentum=0.2,
                           check_ranks=True, buffers='average'),
                      dict(type='RankProbeHook')])
    out = train(cfg, tmp_path / 'w', 2).stdout
    assert 'switch 2 at the end of epoch 2' in out
    assert_ranks_identical(tmp_path / 'w', 2, 2)


def test_two_nodes_on_localhost(tmp_path):
    """NNODES=2: two launchers (one process each) form one job."""
    cfg = config(tmp_path)
    port = str(free_port())
    env = run_env(NNODES='2', PORT=port, MASTER_ADDR='127.0.0.1')
    cmd = ['bash', str(TOOLS / 'dist_train.sh'), str(cfg), '1',
           '--work-dir', str(tmp_path / 'w')]
    nodes = [
        subprocess.Popen(cmd, cwd=tmp_path, env=dict(env, NODE_RANK=str(r)),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True) for r in (0, 1)
    ]
    outs = [p.communicate(timeout=240)[0] for p in nodes]
    assert all(p.returncode == 0 for p in nodes), outs[0][-3000:]
    assert_ranks_identical(tmp_path / 'w', 2, 2)


def test_cross_rank_check_names_the_differing_parameter(tmp_path):
    cfg = config(tmp_path, hooks=[dict(type='PerturbEMA', iteration=3,
                                       name='head.bias', rank=1)])
    proc = train(cfg, tmp_path / 'w', 2, check=False)
    assert proc.returncode != 0
    assert 'first differing parameter: `head.bias`' in proc.stdout


@pytest.mark.parametrize('procs, kill_at', [(1, 13), (2, 7)])
def test_sigkill_and_resume_auto_is_bit_exact(tmp_path, procs, kill_at):
    """Killed mid-epoch 2 (of 2; 8 or 4 iterations an epoch), restarted with
    --resume: the last checkpoint equals the uninterrupted run's."""
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    full = config(tmp_path / 'a')
    train(full, tmp_path / 'full', procs)
    cfg = config(tmp_path / 'b', hooks=[
        dict(type='KillAtIteration', iteration=kill_at)])
    killed = train(cfg, tmp_path / 'part', procs, check=False)
    assert killed.returncode != 0
    assert not (tmp_path / 'part' / 'epoch_2.pth').exists()
    train(cfg, tmp_path / 'part', procs, '--resume')
    a = load_ckpt(tmp_path / 'full' / 'epoch_2.pth')
    b = load_ckpt(tmp_path / 'part' / 'epoch_2.pth')
    assert_same_tensors(a['state_dict'], b['state_dict'])
    assert_same_tensors(a['ema_state_dict'], b['ema_state_dict'])
    assert a['meta']['switch_ema'] == b['meta']['switch_ema'] == dict(
        num_switches=2, skipped_updates=0)


def test_iteration_loop_resumes_mid_epoch(tmp_path):
    """IterBasedTrainLoop: killed between checkpoints, resumed from
    iteration 10: data, weights, EMA and switch counter as uninterrupted."""
    loop = iteration_loop(max_iters=24, milestone=12,
                          checkpoint_interval=5)
    hook = dict(type='SwitchEMAHook', momentum=0.2, switch_by_epoch=False,
                switch_interval=4)
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    full = write_config(tmp_path / 'a', custom_hooks=[hook], **LOUD, **loop)
    cfg = write_config(tmp_path / 'b', **LOUD,
                       custom_hooks=[hook, dict(type='KillAtIteration',
                                                iteration=13)], **loop)
    train(full, tmp_path / 'full')
    assert train(cfg, tmp_path / 'part', check=False).returncode != 0
    out = train(cfg, tmp_path / 'part', 1, '--resume').stdout
    assert 'resumed epoch: 0, iter: 10' in out
    a = load_ckpt(tmp_path / 'full' / 'iter_24.pth')
    b = load_ckpt(tmp_path / 'part' / 'iter_24.pth')
    assert_same_tensors(a['state_dict'], b['state_dict'])
    assert_same_tensors(a['ema_state_dict'], b['ema_state_dict'])
    assert b['meta']['switch_ema']['num_switches'] == 6


WRITER = """
import sys, sema_mm
from mmengine.fileio import get_file_backend
target = sys.argv[1]
data = bytes(256 * 1024 * 1024)
print('writing', flush=True)
get_file_backend(target).put(data, target)
print('done', flush=True)
"""


def test_killed_checkpoint_write_leaves_no_truncated_file(tmp_path):
    target = tmp_path / 'epoch_3.pth'
    proc = subprocess.Popen([sys.executable, '-c', WRITER, str(target)],
                            env=run_env(), stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == 'writing'
    time.sleep(0.05)
    proc.kill()
    proc.wait()
    if target.exists():  # the write finished before the kill
        assert target.stat().st_size == 256 * 1024**2
    else:  # killed half-way: only the hidden temporary file is there
        assert list(tmp_path.glob('.epoch_3.pth.*.tmp'))
    assert list(tmp_path.glob('epoch_*.pth')) in ([], [target])


def test_atomic_put_and_auto_resume_fallback(tmp_path):
    for epoch in (1, 2):  # small but real checkpoints (--resume checks)
        data = io.BytesIO()
        torch.save(dict(meta=dict(epoch=epoch)), data)
        AtomicLocalBackend().put(data.getvalue(),
                                 tmp_path / f'epoch_{epoch}.pth')
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'epoch_1.pth', 'epoch_2.pth']  # no temporary files left
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_3.pth'))
    cfg = Config(dict(resume=True, load_from=None, work_dir=str(tmp_path)))
    resolve_auto_resume(cfg)
    assert cfg.load_from == str(tmp_path / 'epoch_2.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    cfg = Config(dict(resume=True, load_from=None, work_dir=str(tmp_path)))
    resolve_auto_resume(cfg)
    assert cfg.load_from == str(tmp_path / 'epoch_1.pth')
