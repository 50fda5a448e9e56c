"""Test-only helpers for sharded (FSDP) runs of the toy task.

Import with ``custom_imports=dict(imports=['tests.toy', 'tests.fsdp_toy'])``.

* :class:`FSDP2ToyStrategy`: a ``FlexibleRunner`` strategy that wraps the
  model with FSDP2 (``fully_shard`` on a CPU device mesh of all ranks,
  parameters become DTensors); mmengine 0.10.7 has no FSDP2 strategy.
* :class:`FullProbeHook`: after every training epoch (after the switch,
  before the checkpoint) rank 0 writes ``work_dir/full_epoch{epoch}.pth``
  with the gathered weights (``model``) and the gathered EMA (``ema``),
  whatever the wrapping (DDP, FSDP1, FSDP2), and every rank
  ``work_dir/rank{rank}_epoch{epoch}.pth`` with the number of elements of
  its EMA (``ema_numel``) and its own buffers (``buffers``, unwrapped
  names: the normalisation statistics differ between ranks).
"""
import os.path as osp

import torch
from mmengine._strategy import DDPStrategy
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS, STRATEGIES

from sema_mm.compat.fsdp import clean_name
from sema_mm.ema.sharded import ShardedEMA
from sema_mm.hooks import SwitchEMAHook


@STRATEGIES.register_module()
class FSDP2ToyStrategy(DDPStrategy):
    """Wrap the model with FSDP2 on the CPU (gloo): every parameter of the
    backbone and of the whole model is sharded along dim 0 over all ranks.
    """

    def _wrap_model(self, model):
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard
        mesh = init_device_mesh('cpu', (torch.distributed.get_world_size(), ))
        fully_shard(model.backbone, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model


@HOOKS.register_module()
class FullProbeHook(Hook):
    """Save the gathered weights and EMA after every training epoch."""

    priority = 'LOW'  # after SwitchEMAHook (NORMAL)

    def after_train_epoch(self, runner) -> None:
        hook = next(h for h in runner.hooks if isinstance(h, SwitchEMAHook))
        averager = hook.averager
        if isinstance(averager, ShardedEMA):
            model = averager.sharded.full_state_dict()
            ema = averager.full_state()
        else:
            module = runner.model
            module = module.module if is_model_wrapper(module) else module
            model = module.state_dict()
            ema = dict(model)
            ema_module = hook.ema_model.module.state_dict()
            ema.update({n: ema_module[n] for n in averager.pairs.names})
        numel = sum(t.numel() for t in averager.pairs.averaged_tensors())
        buffers = {
            clean_name(n): b.detach().clone()
            for n, b in runner.model.named_buffers()
        }
        torch.save(
            dict(ema_numel=numel, buffers=buffers),
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
