"""Test-only hooks that break a run on purpose.

Import with ``custom_imports=dict(imports=['tests.crash'])``.
"""
import os
import os.path as osp
import signal

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from sema_mm.hooks import SwitchEMAHook


@HOOKS.register_module()
class KillAtIteration(Hook):
    """SIGKILL this process after ``iteration`` (counted from 1) on
    ``rank``, once per work dir (a marker file stops it after a resume)."""

    priority = 'LOWEST'

    def __init__(self, iteration: int, rank: int = 0) -> None:
        self.iteration = iteration
        self.rank = rank

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        marker = osp.join(runner.work_dir, 'killed_once')
        if (runner.iter + 1 == self.iteration and runner.rank == self.rank
                and not osp.exists(marker)):
            open(marker, 'w').close()
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class PerturbEMA(Hook):
    """Add ``delta`` to one EMA tensor on one rank after ``iteration``."""

    priority = 'LOW'  # after SwitchEMAHook's update (NORMAL)

    def __init__(self, iteration: int, name: str, rank: int = 1,
                 delta: float = 1e-3) -> None:
        self.iteration, self.name = iteration, name
        self.rank, self.delta = rank, delta

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 == self.iteration and runner.rank == self.rank:
            hook = next(h for h in runner.hooks
                        if isinstance(h, SwitchEMAHook))
            with torch.no_grad():
                hook.ema_model.module.get_parameter(self.name).add_(
                    self.delta)
