"""SEMA on sharded models: FSDP1 through FlexibleRunner + FSDPStrategy and
FSDP2, with real processes (2 gloo ranks on CPU, ``tools/dist_train.sh``).

Every run trains the toy model for 3 epochs of 4 iterations and switches
every 3 iterations (so checkpoints at epoch ends hold an EMA different from
the model). After each epoch :class:`tests.fsdp_toy.FullProbeHook` saves the
gathered weights and the gathered EMA. Asserted:

* the gathered EMA and weights of FSDP1 (``use_orig_params`` True and
  False) and FSDP2 runs equal those of the same run under DDP within 1e-6
  with every ``buffers`` policy, every rank's buffers and EMA statistics
  included, and
  ``check_ranks=True`` raises no false alarm (on the sharded runs it checks
  the layout, not the values);
* each rank's EMA holds only its shard (the EMA elements of the two ranks
  add up to the model's), plus, with ``'average'``, all the normalisation
  statistics, which are not sharded;
* ``--resume`` from an epoch-1 checkpoint, local (per-rank files) and full,
  ends bit-identical to the uninterrupted run; a full checkpoint's
  ``state_dict`` is the whole EMA and loads strictly into the plain model;
* bad inputs for a sharded EMA fail with a clear message.
"""
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

import pytest
import torch

from tests.test_distributed import train
from tests.test_tools import (
    REPO,
    TOOLS,
    free_port,
    load_ckpt,
    metric_of,
    run,
    run_env,
    write_config,
)

EPOCHS = 3
HOOK = dict(type='SwitchEMAHook', momentum=0.2, switch_by_epoch=False,
            switch_interval=3, check_ranks=True)
STRATEGIES = {
    'ddp': dict(type='DDPStrategy'),
    'fsdp1_orig': dict(type='FSDPStrategy', state_dict_cfg='local',
                       model_wrapper=dict(use_orig_params=True)),
    'fsdp1_flat': dict(type='FSDPStrategy', state_dict_cfg='full',
                       model_wrapper=dict(use_orig_params=False)),
    'fsdp2': dict(type='FSDP2Strategy', shard_modules=['Sequential'],
                  state_dict_cfg='local'),
    'fsdp2_full': dict(type='FSDP2Strategy', shard_modules=['Sequential'],
                       state_dict_cfg='full'),
}


def config(directory: Path, strategy: str, buffers: str,
           extra_hooks: Sequence[dict] = (), overrides: Optional[dict] = None,
           **options) -> Path:
    """The toy config for ``strategy`` under ``FlexibleRunner`` (``options``:
    more SwitchEMAHook arguments; ``overrides``: more top-level keys)."""
    directory.mkdir(parents=True, exist_ok=True)
    imports = ['tests.toy', 'tests.fsdp_toy']
    return write_config(
        directory, **(overrides or {}), runner_type='FlexibleRunner',
        strategy=STRATEGIES[strategy],
        custom_imports=dict(imports=imports, allow_failed_imports=False),
        custom_hooks=[dict(HOOK, buffers=buffers, bn_batches=2, **options),
                      dict(type='FullProbeHook'), *extra_hooks],
        train_cfg=dict(by_epoch=True, max_epochs=EPOCHS, val_interval=1),
        log_level='INFO')


RUNS = {  # name: (strategy, buffers)
    'ddp': ('ddp', 'params'),
    'fsdp1_orig': ('fsdp1_orig', 'params'),
    'fsdp1_flat': ('fsdp1_flat', 'params'),
    'fsdp2': ('fsdp2', 'params'),
    'fsdp2_full': ('fsdp2_full', 'params'),
    'ddp_average': ('ddp', 'average'),
    'fsdp1_orig_average': ('fsdp1_orig', 'average'),
    'fsdp1_flat_average': ('fsdp1_flat', 'average'),
    'ddp_recompute': ('ddp', 'recompute'),
    'fsdp1_orig_recompute': ('fsdp1_orig', 'recompute'),
    'fsdp2_average': ('fsdp2', 'average'),
    'fsdp2_recompute': ('fsdp2', 'recompute'),
}


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Work dirs of the uninterrupted runs, trained once per module."""
    root = tmp_path_factory.mktemp('fsdp')
    out = {}
    for name, (strategy, buffers) in RUNS.items():
        cfg = config(root / name, strategy, buffers)
        log = train(cfg, root / name / 'w', 2).stdout
        assert 'switch 4 at iteration 12' in log, log[-3000:]
        out[name] = root / name
    return out


def full(work_dir: Path, epoch: int) -> dict:
    return torch.load(work_dir / 'w' / f'full_epoch{epoch}.pth',
                      weights_only=False)


def per_rank(work_dir: Path, rank: int, epoch: int) -> dict:
    return torch.load(work_dir / 'w' / f'rank{rank}_epoch{epoch}.pth')


def _unwrapped(tensors: dict) -> dict:
    """``tensors`` without DDP's ``module.`` prefix."""
    return {(n[len('module.'):] if n.startswith('module.') else n): t
            for n, t in tensors.items()}


@pytest.mark.parametrize('name, reference', [
    ('fsdp1_orig', 'ddp'), ('fsdp1_flat', 'ddp'), ('fsdp2', 'ddp'),
    ('fsdp2_full', 'ddp'), ('fsdp1_orig_average', 'ddp_average'),
    ('fsdp1_flat_average', 'ddp_average'),
    ('fsdp2_average', 'ddp_average'),
    ('fsdp1_orig_recompute', 'ddp_recompute'),
    ('fsdp2_recompute', 'ddp_recompute')])
def test_sharded_sema_equals_ddp(runs, name, reference):
    for epoch in range(1, EPOCHS + 1):
        ours, ref = full(runs[name], epoch), full(runs[reference], epoch)
        assert sorted(ours['names']) == sorted(ref['names'])
        assert ours['num_switches'] == ref['num_switches']
        for key in ('model', 'ema'):
            for n in ref['names'] + [k for k in ref['model']
                                     if 'running' in k]:
                torch.testing.assert_close(
                    ours[key][n], ref[key][n], rtol=0, atol=1e-6,
                    msg=f'{key} {n} epoch {epoch}')
        if epoch < EPOCHS:  # mid-interval: EMA != model
            assert not all(
                torch.equal(ours['model'][n], ours['ema'][n])
                for n in ours['names'])
        for rank in (0, 1):  # `full` has rank 0's statistics only
            ours, ref = (per_rank(runs[n], rank, epoch)
                         for n in (name, reference))
            for key in ('buffers', 'ema_norm_stats'):
                a, b = (_unwrapped(r[key]) for r in (ours, ref))
                assert sorted(a) == sorted(b), key
                for n in b:
                    torch.testing.assert_close(
                        a[n], b[n], rtol=0, atol=1e-6,
                        msg=f'rank {rank} {key} {n} epoch {epoch}')
    ours = [per_rank(runs[name], r, 1) for r in (0, 1)]
    ref = per_rank(runs[reference], 0, 1)
    # Normalisation statistics are not sharded: each rank holds all.
    stats = ref['norm_numel']
    assert all(o['norm_numel'] == stats for o in ours)
    sizes = [o['ema_numel'] - stats for o in ours]
    whole = ref['ema_numel'] - stats
    assert sum(sizes) == whole and max(sizes) < whole


@pytest.mark.parametrize('name', ['fsdp1_flat', 'fsdp2_full'])
def test_full_checkpoint_holds_the_whole_ema(runs, name):
    from tests.toy import ToyClassifier
    ckpt = load_ckpt(runs[name] / 'w' / 'epoch_2.pth')
    probe = full(runs[name], 2)
    for n in probe['names']:
        assert torch.equal(ckpt['state_dict'][n], probe['ema'][n]), n
        assert torch.equal(ckpt['ema_state_dict']['module.' + n],
                           probe['model'][n]), n
    ToyClassifier().load_state_dict(ckpt['state_dict'], strict=True)


@pytest.mark.parametrize('name', [
    'fsdp1_orig', 'fsdp1_flat', 'fsdp2', 'fsdp2_full', 'fsdp1_flat_average'])
def test_resume_is_bit_exact(runs, name, tmp_path):
    """Resumed from the epoch-1 checkpoint (local: a directory of per-rank
    files; full: one file), epochs 2 and 3 equal the uninterrupted run's,
    on every rank: the checkpoint falls between switches, when the ranks'
    normalisation statistics differ (a full state dict alone has rank
    0's)."""
    base = runs[name]
    strategy, buffers = RUNS[name]
    cfg = config(tmp_path, strategy, buffers)
    out = train(cfg, tmp_path / 'w', 2, '--resume',
                str(base / 'w' / 'epoch_1.pth')).stdout
    assert 'resumed epoch: 1, iter: 4' in out
    for epoch in (2, EPOCHS):
        a, b = full(base, epoch), full(tmp_path, epoch)
        for key in ('model', 'ema'):
            for n in a[key]:
                assert torch.equal(a[key][n], b[key][n]), (epoch, key, n)
        for rank in (0, 1):
            a, b = per_rank(base, rank, epoch), per_rank(tmp_path, rank,
                                                          epoch)
            for key in ('buffers', 'ema_norm_stats'):
                for n in a[key]:
                    assert torch.equal(a[key][n], b[key][n]), \
                        (epoch, rank, key, n)
    assert full(base, EPOCHS)['num_switches'] == 4
    assert full(tmp_path, EPOCHS)['num_switches'] == 4


@pytest.mark.parametrize('name', ['fsdp1_flat', 'fsdp2_full'])
def test_full_checkpoint_tests_as_the_plain_model(runs, name, tmp_path):
    """``tools/dist_test.sh`` with the sharded config and its full epoch-3
    checkpoint (2 processes) gives the metric that ``tools/test.py`` gives
    with the plain toy config (one process, the ordinary Runner) on the
    same file."""
    ckpt = str(runs[name] / 'w' / f'epoch_{EPOCHS}.pth')
    (tmp_path / 'plain').mkdir()
    plain = write_config(tmp_path / 'plain')
    single = metric_of(run(
        [sys.executable, str(TOOLS / 'test.py'), str(plain), ckpt,
         '--work-dir', str(tmp_path / 'one')], cwd=tmp_path).stdout)
    sharded = config(tmp_path / 'sharded', *RUNS[name])
    out = run(['bash', str(TOOLS / 'dist_test.sh'), str(sharded), ckpt, '2',
               '--work-dir', str(tmp_path / 'two')], cwd=tmp_path,
              PORT=str(free_port())).stdout
    assert 'sharded model' in out, out[-3000:]
    assert metric_of(out) == pytest.approx(single)


@pytest.mark.parametrize('strategy', ['fsdp1_orig', 'fsdp2'])
def test_nonfinite_shard_skips_the_update_on_every_rank(strategy, tmp_path):
    """A NaN written into one element of rank 1's shard after the 5th
    optimizer step (``tests.fsdp_toy.NaNShardHook``; rank 0's shard stays
    finite): every rank skips that update (and the following ones, the NaN
    spreads through SGD's momentum), the EMA stays finite on every rank and
    is switched in, and ``check_ranks`` finds the same number of updates
    on both ranks at every switch (with a rank that updated alone, it
    would stop the run)."""
    cfg = config(tmp_path, strategy, 'params', nonfinite_check='weights',
                 extra_hooks=[dict(type='NaNShardHook', iteration=5,
                                   rank=1)])
    out = train(cfg, tmp_path / 'w', 2).stdout
    assert 'switch 4 at iteration 12' in out, out[-3000:]
    injected = torch.load(tmp_path / 'w' / 'nan_injected.pth')
    assert injected['rank'] == 1 and injected['iteration'] == 5
    for epoch in range(1, EPOCHS + 1):
        probe = full(tmp_path, epoch)
        assert all(probe['ema'][n].isfinite().all() for n in probe['names'])
    ema_before = full(tmp_path, 1)['ema']  # iteration 4: the last update
    last = full(tmp_path, EPOCHS)
    for n in last['names']:
        assert torch.equal(last['ema'][n], ema_before[n]), n
    # The switch at iteration 6 copied the (finite) EMA in.
    assert 'non-finite weights at iteration 6' in out


LOAD_LOCAL = r'''
import sys, torch, torch.distributed as dist
from sema_mm.compat.checkpoint_safety import RESTRICTED_PICKLE
dist.init_process_group('gloo')
path = f'{sys.argv[1]}/rank{dist.get_rank()}.pth'
ours = torch.load(path, weights_only=False, pickle_module=RESTRICTED_PICKLE)
plain = torch.load(path, weights_only=False)
assert sorted(ours['ema_state_dict']['shards']) == sorted(
    plain['ema_state_dict']['shards'])
for name, tensor in plain['state_dict'].items():
    mine = ours['state_dict'][name]
    assert type(mine) is type(tensor), name
    if hasattr(tensor, 'local_tensor'):  # a ShardedTensor
        mine, tensor = mine.local_tensor(), tensor.local_tensor()
    assert torch.equal(mine, tensor), name
print('LOADED', dist.get_rank(), len(plain['state_dict']))
dist.barrier()
dist.destroy_process_group()
'''


def test_local_checkpoints_load_without_running_code(runs, tmp_path):
    """FSDP1's per-rank files (``ShardedTensor`` state, which only loads
    in a process group of the same ranks) load with the restricted
    unpickler of torch < 2.4 (here on any torch) as with torch's own
    loading."""
    script = tmp_path / 'load_local.py'
    script.write_text(LOAD_LOCAL)
    env = run_env(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
         '2', '--master_port', env['MASTER_PORT'], str(script),
         str(runs['fsdp1_orig'] / 'w' / 'epoch_1.pth')],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert proc.stdout.count('LOADED') == 2, proc.stdout[-3000:]


BAD_INPUTS = r'''
import os, torch, torch.distributed as dist
import sema_mm
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from sema_mm.ema.factory import build_averager
from tests.toy import ToyClassifier
dist.init_process_group('gloo', rank=0, world_size=1)
model = ToyClassifier()
fully_shard(model, mesh=init_device_mesh('cpu', (1, )))
for cfg, kw in ((dict(type='FusedEMA', momentum=0.1, device='cpu'), {}),
                (dict(type='ExponentialMovingAverage', momentum=0.1), {}),
                (dict(type='FusedEMA', momentum=0.1),
                 dict(teacher='encoder_k'))):
    try:
        build_averager(model, cfg.pop('type'), cfg.pop('momentum'), cfg,
                       **kw)
    except ValueError as e:
        print('REFUSED', e)
dist.destroy_process_group()
'''


def test_bad_inputs_for_a_sharded_ema(tmp_path):
    env = run_env(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    proc = subprocess.run([sys.executable, '-c', BAD_INPUTS], cwd=REPO,
                          env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120)
    refused = [ln for ln in proc.stdout.splitlines()
               if ln.startswith('REFUSED')]
    assert len(refused) == 3, proc.stdout[-3000:]
    assert 'device is not supported for a sharded (FSDP) model' in \
        refused[0]
    assert "use the default ema_type='FusedEMA'" in refused[1]
    assert 'use teacher=None' in refused[2]
