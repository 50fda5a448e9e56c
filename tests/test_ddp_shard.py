"""``SwitchEMAHook(shard=True)`` under DDP: each rank keeps 1/W of the EMA.

Real processes (gloo on CPU) through ``tools/dist_train.sh`` and the
ordinary mmengine Runner. Each sharded run is compared with the same run
with the replicated EMA (``shard=False``), 2 and 3 processes:

* every rank's weights after every switch, the gathered EMA and weights
  after every epoch and every checkpoint (epoch and best) are
  bit-identical; the switches fall between epoch ends, so checkpoints are
  also saved while the EMA differs from the weights (then gathered for
  them); with 3 processes the EMA also averages the normalisation
  statistics (``buffers='average'``), is held on ``device='cpu'``, and
  every gather is split into many small all-gathers;
* each rank holds its balanced share of the EMA and says so in the log;
* a 2-rank checkpoint resumes on 3 ranks and on 1 with the whole EMA;
  ``strict_load`` applies as to the replicated EMA;
* the replicated EMA's ``ema_model.module`` has each rank's buffers; the
  sharded EMA's gathered form has them;
* bad inputs fail before training.
"""
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.test_distributed import train
from tests.test_tools import assert_same_tensors, load_ckpt, write_config
from tests.utils import make_runner

EPOCHS = 3
RUNS = {  # name: (processes, shard, more SwitchEMAHook options)
    'replicated2': (2, False, {}),
    'shard2': (2, True, {}),
    'replicated3': (3, False, dict(buffers='average', switch_interval=2)),
    'shard3': (3, True, dict(buffers='average', switch_interval=2,
                             device='cpu')),
}
#: Elements per rank per all-gather in the 3-process sharded run (the
#: toy's 267 parameter elements: 89 per rank, gathered in 13 pieces).
SMALL_CHUNK = 7


def config(directory: Path, shard: bool, hooks=(), **options) -> Path:
    """The toy config (3 epochs, validation and checkpoints every epoch, a
    best checkpoint) with probes and ``SwitchEMAHook(shard=shard)``
    switching every 3 iterations (``options`` override)."""
    directory.mkdir(parents=True, exist_ok=True)
    hook = dict(dict(type='SwitchEMAHook', momentum=0.2, check_ranks=True,
                     switch_by_epoch=False, switch_interval=3, shard=shard),
                **options)
    return write_config(
        directory, log_level='INFO',
        custom_imports=dict(imports=['tests.toy', 'tests.fsdp_toy'],
                            allow_failed_imports=False),
        custom_hooks=[hook, dict(type='FullProbeHook'),
                      dict(type='SwitchProbeHook'),
                      dict(type='StartProbeHook'), *hooks],
        train_cfg=dict(by_epoch=True, max_epochs=EPOCHS, val_interval=1),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1,
                            save_best='toy/accuracy', rule='greater'),
            logger=dict(type='LoggerHook', interval=1)))


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Work dirs and logs of the runs, trained once per module."""
    root = tmp_path_factory.mktemp('ddp_shard')
    out = {}
    for name, (procs, shard, options) in RUNS.items():
        hooks = [dict(type='GatherChunkHook', elements=SMALL_CHUNK)
                 ] if name == 'shard3' else []
        cfg = config(root / name, shard, hooks, **options)
        log = train(cfg, root / name / 'w', procs).stdout
        out[name] = (root / name / 'w', log)
    return out


def _files(work_dir: Path, pattern: str):
    return sorted(p.name for p in work_dir.glob(pattern))


@pytest.mark.parametrize('procs', [2, 3])
def test_shard_is_bit_identical_to_the_replicated_ema(runs, procs):
    ours, ref = runs[f'shard{procs}'][0], runs[f'replicated{procs}'][0]
    switches = _files(ref, 'rank*_switch*.pth')
    assert len(switches) == procs * 4  # 4 switches on every rank
    assert _files(ours, 'rank*_switch*.pth') == switches
    for name in switches:  # every rank's weights after every switch
        assert_same_tensors(torch.load(ours / name), torch.load(ref / name))
    for epoch in range(1, EPOCHS + 1):
        a, b = (torch.load(w / f'full_epoch{epoch}.pth')
                for w in (ours, ref))
        assert a['num_switches'] == b['num_switches']
        assert_same_tensors(a['model'], b['model'])
        assert_same_tensors(a['ema'], b['ema'])
    # Checkpoints fall between switches too (EMA != weights there).
    mid = torch.load(ref / 'full_epoch1.pth')
    assert not all(torch.equal(mid['model'][n], mid['ema'][n])
                   for n in mid['names'])
    checkpoints = _files(ref, '*.pth')
    checkpoints = [c for c in checkpoints
                   if c.startswith(('epoch_', 'best_'))]
    assert len(checkpoints) >= EPOCHS + 1
    for name in checkpoints:
        a, b = load_ckpt(ours / name), load_ckpt(ref / name)
        assert_same_tensors(a['state_dict'], b['state_dict'])
        assert_same_tensors(a['ema_state_dict'], b['ema_state_dict'])
        assert a['meta']['switch_ema'] == b['meta']['switch_ema']


@pytest.mark.parametrize('procs', [2, 3])
def test_each_rank_holds_its_share(runs, procs):
    (ours, log), (ref, _) = runs[f'shard{procs}'], runs[f'replicated{procs}']
    whole = torch.load(ref / 'rank0_epoch1.pth')
    stats = whole['norm_numel']  # held whole by every rank
    shares = [torch.load(ours / f'rank{r}_epoch1.pth')['ema_numel'] - stats
              for r in range(procs)]
    params = whole['ema_numel'] - stats
    assert sum(shares) == params
    assert max(shares) - min(shares) <= 1
    assert (f'this rank holds {shares[0] + stats} of {params + stats} '
            'elements of the EMA') in log


@pytest.mark.parametrize('procs', [2, 3])
def test_ema_model_carries_the_model_buffers(runs, procs):
    """EMAHook's contract under DDP: after every epoch, the last one
    included, the replicated EMA's ``ema_model.module`` has each rank's own
    buffers that are not averaged (BatchNorm running statistics with
    ``buffers='params'``, ``num_batches_tracked``). With ``shard=True``
    ``ema_model`` holds the rank's share of the averaged tensors and none
    of the model's buffers; the gathered EMA (``full_ema_state_dict``) has
    the model's."""
    ref, ours = runs[f'replicated{procs}'][0], runs[f'shard{procs}'][0]
    for rank in range(procs):
        for epoch in range(1, EPOCHS + 1):
            probe = torch.load(ref / f'rank{rank}_epoch{epoch}.pth')
            own = {  # the DDP wrapper's names
                n[len('module.'):] if n.startswith('module.') else n: b
                for n, b in probe['buffers'].items()
            }
            tied = {
                n: b
                for n, b in own.items() if n not in probe['ema_norm_stats']
            }
            assert int(tied['backbone.1.num_batches_tracked']) > 0
            assert ('backbone.1.running_mean' in tied) == (procs == 2)
            for name, buffer in tied.items():
                assert torch.equal(probe['ema_module_buffers'][name],
                                   buffer), (rank, epoch, name)
        sharded = torch.load(ours / f'rank{rank}_epoch{EPOCHS}.pth')
        assert not any(n.endswith('num_batches_tracked')
                       for n in sharded['ema_module_buffers'])
    full = torch.load(ours / f'full_epoch{EPOCHS}.pth')
    buffers = [n for n in full['model'] if n.endswith(
        ('running_mean', 'running_var', 'num_batches_tracked', 'calls'))]
    assert 'backbone.1.num_batches_tracked' in buffers
    for name in buffers:
        if name not in full['names']:
            assert torch.equal(full['ema'][name], full['model'][name]), name


@pytest.mark.parametrize('procs', [3, 1])
def test_two_rank_checkpoint_resumes_on_other_rank_counts(runs, procs,
                                                          tmp_path):
    """The epoch-1 checkpoint of the 2-process sharded run (EMA !=
    weights) resumes with shard=True on 3 processes and on 1: when
    training starts, the whole EMA is the checkpoint's and the weights
    are its own."""
    ckpt_path = runs['shard2'][0] / 'epoch_1.pth'
    cfg = config(tmp_path, True)
    log = train(cfg, tmp_path / 'w', procs, '--resume',
                str(ckpt_path)).stdout
    assert 'resumed epoch: 1, iter: 4' in log
    if procs == 1:
        assert 'shard=True adds nothing in a single process' in log
    ckpt = load_ckpt(ckpt_path)
    start = torch.load(tmp_path / 'w' / 'start.pth')
    names = torch.load(runs['shard2'][0] / 'full_epoch1.pth')['names']
    for n in names:
        assert torch.equal(start['ema'][n], ckpt['state_dict'][n]), n
        assert torch.equal(start['model'][n],
                           ckpt['ema_state_dict']['module.' + n]), n
    last = torch.load(tmp_path / 'w' / f'full_epoch{EPOCHS}.pth')
    assert last['num_switches'] > 1


@pytest.mark.parametrize('strict, change', [
    (True, 'extra'), (False, 'extra'), (True, 'missing'), (False, 'missing')])
def test_strict_load_with_shard(strict, change):
    """``strict_load`` applies to the sharded EMA as to the replicated one
    (the checkpoints have the same form), here for rank 1 of 2 (no
    collective runs in a load): an entry the model lacks fails with
    ``strict_load=True`` and is left out with False (the rank's range of
    the EMA is the checkpoint's); a missing averaged tensor fails with True
    and restarts the EMA with False, with a warning."""
    from mmengine.logging import MMLogger

    from sema_mm.ema.checkpoints import full_ema_state
    from sema_mm.ema.momentum import MomentumSchedule
    from sema_mm.ema.sharded import DDPShardedEMA
    from sema_mm.sharding import DDPShards
    from tests.toy import ToyClassifier
    from tests.utils import LogCapture

    torch.manual_seed(0)
    model = ToyClassifier()
    names = [n for n, _ in model.named_parameters()]
    averager = DDPShardedEMA(DDPShards(model, names, world_size=2, rank=1),
                             model, MomentumSchedule(0.2), False)
    ema = {n: torch.randn_like(p) for n, p in model.named_parameters()}
    model_state = {k: v.clone() for k, v in model.state_dict().items()}
    ckpt = dict(state_dict=model_state, ema_state_dict=full_ema_state(
        model_state, ema, names, torch.tensor(5)))
    if change == 'extra':
        ckpt['ema_state_dict']['module.extra.weight'] = torch.zeros(1, 2)
    else:
        del ckpt['ema_state_dict']['module.head.weight']
    logs = LogCapture(SimpleNamespace(logger=MMLogger.get_current_instance()))
    if strict:
        with pytest.raises(ValueError, match='set strict_load=False'):
            averager.load(ckpt, strict=True)
        return
    loaded = averager.load(ckpt, strict=False)
    assert loaded == (change == 'extra')
    warnings = ' '.join(logs.messages(logging.WARNING))
    if not loaded:
        assert 'starts again from the resumed weights' in warnings
        return
    assert 'loaded the EMA entries' in warnings
    assert averager.ema_model.num_steps == 5
    held = dict(zip(averager.pairs.grouped_names,
                    averager.pairs.averaged_tensors()))
    start = averager.shards.groups[0].ranges[1][0]
    assert start > 0  # rank 1's range
    whole = torch.cat([ema[n].reshape(-1) for n in names])
    mine = torch.cat([held[n] for n in names if n in held])
    assert torch.equal(mine, whole[start:start + mine.numel()])


@pytest.mark.parametrize('options, model, message', [
    (dict(ema_type='ExponentialMovingAverage'), 'ToyClassifier',
     "use the default ema_type='FusedEMA'"),
    (dict(), 'ToyMomentumModel', 'use teacher=None'),
    (dict(teacher='encoder_k'), 'ToyMomentumModel', 'use teacher=None'),
])
def test_bad_inputs_fail_before_training(tmp_path, options, model,
                                         message):
    from sema_mm.hooks import SwitchEMAHook
    runner = make_runner(tmp_path, model=dict(type=model), custom_hooks=[
        dict(type='SwitchEMAHook', shard=True, **options)])
    with pytest.raises(ValueError, match='SwitchEMAHook') as error:
        runner.train()
    assert message in str(error.value)
    assert runner.iter == 0
    with pytest.raises(ValueError, match='shard must be True or False'):
        SwitchEMAHook(shard='yes')


def test_teacher_none_shards_beside_the_teacher(tmp_path):
    """With teacher=None a model with a momentum teacher trains with
    shard=True (a single process: the EMA is whole, as without shard)."""
    runner = make_runner(tmp_path, model=dict(type='ToyMomentumModel'),
                         train_cfg=dict(by_epoch=True, max_epochs=1),
                         custom_hooks=[dict(type='SwitchEMAHook', shard=True,
                                            teacher=None)])
    runner.train()
    hook = next(h for h in runner.hooks
                if type(h).__name__ == 'SwitchEMAHook')
    assert hook.num_switches == 1
    assert 'encoder_k' in hook.averager.excluded
