"""Test-only helpers for sharded runs of the toy task (FSDP, and DDP with
``SwitchEMAHook(shard=True)``).

Import with ``custom_imports=dict(imports=['tests.toy', 'tests.fsdp_toy'])``.

* :class:`FullProbeHook`: after every training epoch (after the switch,
  before the checkpoint) rank 0 writes ``work_dir/full_epoch{epoch}.pth``
  with the gathered weights (``model``) and the gathered EMA (``ema``),
  whatever the wrapping (DDP, FSDP1, FSDP2), and every rank
  ``work_dir/rank{rank}_epoch{epoch}.pth`` with the number of elements of
  its EMA (``ema_numel``; ``norm_numel`` of them are normalisation
  statistics, which are not sharded), its own buffers (``buffers``,
  unwrapped names: the normalisation statistics differ between ranks),
  with ``buffers='average'``, its EMA's statistics (``ema_norm_stats``), and
  the buffers of the hook's ``ema_model.module`` (``ema_module_buffers``).
* :class:`SwitchProbeHook`: after every switch, every rank writes
  ``work_dir/rank{rank}_switch{n}.pth`` with its model's state dict.
* :class:`GatherChunkHook`: with ``shard=True``, gathers of at most
  ``elements`` per rank (many all-gathers per gather on the toy model).
* :class:`StartProbeHook`: when training starts (after a resume), rank 0
  writes ``work_dir/start.pth`` with the whole EMA (gathered on every
  rank) and the model's state dict.
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
        ema_module_buffers = {
            n: b.detach().clone()
            for n, b in hook.ema_model.module.named_buffers()
        }
        torch.save(
            dict(ema_numel=numel, buffers=buffers,
                 ema_norm_stats=ema_norm_stats,
                 ema_module_buffers=ema_module_buffers,
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


def _sema_hook(runner) -> SwitchEMAHook:
    return next(h for h in runner.hooks if isinstance(h, SwitchEMAHook))


@HOOKS.register_module()
class SwitchProbeHook(Hook):
    """Save every rank's model after every switch."""

    priority = 'LOW'  # after SwitchEMAHook (NORMAL)

    def __init__(self) -> None:
        self.seen = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self._probe(runner)

    def after_train_epoch(self, runner) -> None:
        self._probe(runner)

    def _probe(self, runner) -> None:
        switches = _sema_hook(runner).num_switches
        if switches == self.seen:
            return
        self.seen = switches
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        torch.save({k: v.clone() for k, v in model.state_dict().items()},
                   osp.join(runner.work_dir,
                            f'rank{runner.rank}_switch{switches}.pth'))


@HOOKS.register_module()
class StartProbeHook(Hook):
    """Save the whole EMA and the model when training starts."""

    priority = 'LOW'  # after SwitchEMAHook (NORMAL)

    def before_train(self, runner) -> None:
        ema = _sema_hook(runner).full_ema_state_dict()  # on every rank
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        if runner.rank == 0:
            torch.save(dict(ema=ema, model=model.state_dict()),
                       osp.join(runner.work_dir, 'start.pth'))


@HOOKS.register_module()
class GatherChunkHook(Hook):
    """Make the gathers of a DDP-sharded EMA send ``elements`` per rank per
    all-gather."""

    priority = 'LOW'

    def __init__(self, elements: int) -> None:
        self.elements = elements

    def before_train(self, runner) -> None:
        _sema_hook(runner).averager.shards.gather_chunk = self.elements
