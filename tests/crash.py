"""Test-only hooks that break, stop or hold a run on purpose.

Import with ``custom_imports=dict(imports=['tests.crash'])``.
"""
import os
import os.path as osp
import signal
import time

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


@HOOKS.register_module()
class PreemptAtIteration(Hook):
    """Request a preemption stop after ``iteration`` (counted from 1), as a
    signal does, once per work dir (a marker file stops it after a resume).
    With ``signal`` set, a real signal of that name is sent to this
    process instead; with ``again_while_saving``, the same signal is sent
    once more while the preemption checkpoint is being saved; with
    ``in_validation``, the stop comes during the validation that follows
    ``iteration`` instead."""

    priority = 'LOWEST'

    def __init__(self, iteration: int, signal: str = '',
                 again_while_saving: bool = False,
                 in_validation: bool = False) -> None:
        self.iteration = iteration
        self.signal = signal
        self.again_while_saving = again_while_saving
        self.in_validation = in_validation

    def _once(self, runner, what: str = 'preempted') -> bool:
        marker = osp.join(runner.work_dir, f'{what}_once')
        if osp.exists(marker):
            return False
        open(marker, 'w').close()
        return True

    def _stop(self, runner) -> None:
        if self.signal:
            os.kill(os.getpid(), signal.Signals[self.signal])
        else:
            runner.train_loop.request_preemption('test')

    def before_train(self, runner) -> None:
        if self.iteration == 0 and self._once(runner):
            self._stop(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if not self.in_validation and runner.iter + 1 == self.iteration \
                and self._once(runner):
            self._stop(runner)

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None) -> None:
        if self.in_validation and runner.iter == self.iteration and \
                self._once(runner):
            self._stop(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.again_while_saving and self.signal and \
                checkpoint['meta']['iter'] == self.iteration and \
                self._once(runner, 'signalled_while_saving'):
            os.kill(os.getpid(), signal.Signals[self.signal])


@HOOKS.register_module()
class HoldAtIteration(Hook):
    """After ``iteration`` (counted from 1), once per work dir, write
    ``<folder>/rank<R>.waiting`` (holding the pid) and wait until
    ``<folder>/go`` exists: a test acts while every rank is held there."""

    priority = 'LOWEST'

    def __init__(self, iteration: int, folder: str) -> None:
        self.iteration = iteration
        self.folder = folder

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        marker = osp.join(runner.work_dir, f'held_once_rank{runner.rank}')
        if runner.iter + 1 != self.iteration or osp.exists(marker):
            return
        open(marker, 'w').close()
        with open(osp.join(self.folder, f'rank{runner.rank}.waiting'),
                  'w') as f:
            f.write(str(os.getpid()))
        while not osp.exists(osp.join(self.folder, 'go')):
            time.sleep(0.05)
