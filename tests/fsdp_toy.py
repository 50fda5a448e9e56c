"""Test-only helpers for sharded (FSDP) runs of the toy task.

Import with ``custom_imports=dict(imports=['tests.toy', 'tests.fsdp_toy'])``.

* :class:`FullProbeHook`: after every training epoch (after the switch,
  before the checkpoint) rank 0 writes ``work_dir/full_epoch{epoch}.pth``
  with the gathered weights (``model``) and the gathered EMA (``ema``),
  whatever the wrapping (DDP, FSDP1, FSDP2), and every rank
  ``work_dir/rank{rank}_epoch{epoch}.pth`` with the number of elements of
  its EMA (``ema_numel``; ``norm_numel`` of them are normalisation
  statistics, which are not sharded), its own buffers (``buffers``,
  unwrapped names: the normalisation statistics differ between ranks) and,
  with ``buffers='average'``, its EMA's statistics (``ema_norm_stats``).
"""
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from sema_mm.ema.sharded import ShardedEMA
from sema_mm.hooks import SwitchEMAHook
from sema_mm.sharding import clean_name, find_sharded


@HOOKS.register_module()
class FullProbeHook(Hook):
    """Save the gathered weights and EMA after every training epoch."""

    priority = 'LOW'  # after SwitchEMAHook (NORMAL)

    def after_train_epoch(self, runner) -> None:
        hook = next(h for h in runner.hooks if isinstance(h, SwitchEMAHook))
        averager = hook.averager
        if isinstance(averager, ShardedEMA):
            model = averager.shards.gather_full()
            ema = averager.full_state()
        else:
            module = runner.model
            module = module.module if is_model_wrapper(module) else module
            model = module.state_dict()
            ema = dict(model)
            ema_module = hook.ema_model.module.state_dict()
            ema.update({n: ema_module[n] for n in averager.pairs.names})
        averaged = dict(zip(averager.pairs.grouped_names,
                            averager.pairs.averaged_tensors()))
        numel = sum(t.numel() for t in averaged.values())
        ema_norm_stats = {
            n: t.detach().clone()
            for n, t in averaged.items()
            if n.rpartition('.')[2] in ('running_mean', 'running_var')
        }
        buffers = {
            clean_name(n): b.detach().clone()
            for n, b in runner.model.named_buffers()
        }
        torch.save(
            dict(ema_numel=numel, buffers=buffers,
                 ema_norm_stats=ema_norm_stats,
                 norm_numel=sum(t.numel() for t in ema_norm_stats.values())),
            osp.join(runner.work_dir,
                     f'rank{runner.rank}_epoch{runner.epoch + 1}.pth'))
        if runner.rank == 0:
            torch.save(
                dict(model={k: v.clone() for k, v in model.items()},
                     ema={k: v.clone() for k, v in ema.items()},
                     names=list(averager.pairs.names),
                     num_switches=hook.num_switches),
                osp.join(runner.work_dir,
                         f'full_epoch{runner.epoch + 1}.pth'))


@HOOKS.register_module()
class NaNShardHook(Hook):
    """After the optimizer step of ``iteration`` (1-based), before
    SwitchEMAHook sees it, write a NaN into the first element of this
    rank's local shards, on ``rank`` only; the rank saves
    ``work_dir/nan_injected.pth``."""

    priority = 'ABOVE_NORMAL'

    def __init__(self, iteration: int, rank: int) -> None:
        self.iteration = iteration
        self.rank = rank

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 != self.iteration or runner.rank != self.rank:
            return
        shards = find_sharded(runner.model).params
        name, shard = next((n, t) for n, t in shards.items() if t.numel())
        with torch.no_grad():
            shard.view(-1)[0] = float('nan')
        torch.save(dict(rank=runner.rank, iteration=self.iteration,
                        name=name),
                   osp.join(runner.work_dir, 'nan_injected.pth'))
