"""A test-only hook that holds a run at a gate or makes it fail once.

Import it from a config with
``custom_imports=dict(imports=['tests.run_control'])`` and add
``dict(type='RunControlHook', folder=FOLDER)`` to ``custom_hooks``. A run is
named by the last two parts of its work dir, ``<variant>_<seed dir>`` (e.g.
``sema_seed1`` for ``.../toy/sema/seed1``). In ``FOLDER``:

* ``<name>.hold``: before its second epoch the run writes ``<name>.waiting``
  and waits until ``<name>.hold`` is removed or the run is asked to stop
  (a preemption signal), so a test can act while the run is known to be in
  the middle of training, after its first checkpoint;
* ``<name>.fail``: after its first epoch's checkpoint the run removes the
  file and raises, i.e. it fails once and succeeds when started again. With
  a ``<name>.hold`` as well, it waits at that gate first (writing
  ``<name>.waiting``), so a test decides when the failure comes.
"""
import os
import os.path as osp
import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def run_name(work_dir: str) -> str:
    """``'sema_seed1'`` for ``.../toy/sema/seed1``."""
    parts = osp.normpath(work_dir).split(os.sep)
    return f'{parts[-2]}_{parts[-1]}'


@HOOKS.register_module()
class RunControlHook(Hook):
    """Gate and planned failure (see the module docstring).

    Args:
        folder (str): Where the control files are.
    """

    # After CheckpointHook (VERY_LOW): the first epoch's checkpoint exists
    # when the planned failure comes.
    priority = 'LOWEST'

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def _path(self, runner, ending: str) -> str:
        return osp.join(self.folder, f'{run_name(runner.work_dir)}.{ending}')

    def _wait_at_gate(self, runner) -> None:
        hold = self._path(runner, 'hold')
        if osp.exists(hold):
            with open(self._path(runner, 'waiting'), 'w') as f:
                f.write(str(os.getpid()))
            while osp.exists(hold) and not getattr(
                    runner.train_loop, 'preemption_requested', False):
                time.sleep(0.1)

    def before_train_epoch(self, runner) -> None:
        if runner.epoch >= 1:
            self._wait_at_gate(runner)

    def after_train_epoch(self, runner) -> None:
        fail = self._path(runner, 'fail')
        if runner.epoch == 0 and osp.exists(fail):
            self._wait_at_gate(runner)
            os.remove(fail)
            raise RuntimeError(f'planned failure of {runner.work_dir}')
