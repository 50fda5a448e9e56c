"""Stop training cleanly on SIGTERM / SIGUSR1: signals, agreement, requeue.

Slurm sends SIGTERM at preemption and at the time limit (SIGKILL follows
after ``KillWait``, 30 s by default), or SIGUSR1 some time before with
``--signal``; torchrun passes SIGTERM on to its workers. The resumable
loops (:mod:`sema_mm.resume.loops`) then finish the iteration in progress,
write a checkpoint and exit with :data:`PREEMPTED_EXIT_CODE`:

* :class:`PreemptionSignals` installs handlers that only set a flag (a
  second signal, during the save for instance, changes nothing);
* :class:`StopAgreement` makes every rank stop after the same iteration
  without a per-step host synchronisation on GPUs: at the start of each
  iteration a non-blocking ``all_reduce(MAX)`` of the local flag is posted
  on a small gloo group, and its result is read at the end of that
  iteration, so all ranks stop after the same one;
* :func:`requeue_slurm_job` runs ``scontrol requeue $SLURM_JOB_ID``;
* :class:`Preempted` is the ``SystemExit`` that ends the process.
"""
import logging
import os
import shutil
import signal
import subprocess
import threading
from typing import Dict, Optional, Sequence, Union

import torch
import torch.distributed as torch_dist
from mmengine.logging import print_log

#: Exit status of a run that stopped for a preemption signal after writing
#: its checkpoint (restart it with ``--resume``). Not 0, so that launchers
#: and schedulers do not take it for a finished run; not 128 + N, so that
#: it is not taken for a death by signal N.
PREEMPTED_EXIT_CODE = 86

#: The signals handled by default.
DEFAULT_SIGNALS = ('SIGTERM', 'SIGUSR1')


class Preempted(SystemExit):
    """Raised by a resumable loop after its preemption checkpoint; exits
    the process with :data:`PREEMPTED_EXIT_CODE` unless caught."""

    def __init__(self, message: str) -> None:
        super().__init__(PREEMPTED_EXIT_CODE)
        self.message = message

    def __str__(self) -> str:
        return self.message


def signal_numbers(names: Sequence[Union[str, int]]) -> Dict[str, int]:
    """``{'SIGTERM': 15, ...}`` for signal names or numbers.

    Raises:
        ValueError: For a name this platform does not know.
    """
    numbers = {}
    for name in names:
        try:
            number = signal.Signals[name] if isinstance(name, str) \
                else signal.Signals(name)
        except (KeyError, ValueError):
            raise ValueError(
                f'preemption signals: unknown signal {name!r}; use names '
                "such as 'SIGTERM' and 'SIGUSR1'.") from None
        numbers[number.name] = int(number)
    return numbers


class PreemptionSignals:
    """Handlers that record a preemption request and nothing else.

    Args:
        names (Sequence[str]): Signal names, e.g. ``('SIGTERM',
            'SIGUSR1')``.
    """

    def __init__(self, names: Sequence[Union[str, int]]) -> None:
        self.numbers = signal_numbers(names)
        self.reason: Optional[str] = None
        self._previous: Dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """Whether a stop was requested."""
        return self.reason is not None

    def request(self, reason: str) -> None:
        """Request a stop (what a signal does); the first reason stays."""
        if self.reason is None:
            self.reason = reason

    def _handle(self, signum: int, frame) -> None:
        self.request(signal.Signals(signum).name)

    def install(self) -> bool:
        """Install the handlers (main thread only; elsewhere Python allows
        no handlers and nothing is installed).

        Returns:
            bool: Whether they were installed.
        """
        if threading.current_thread() is not threading.main_thread():
            return False
        for number in self.numbers.values():
            self._previous[number] = signal.signal(number, self._handle)
        return True

    def restore(self) -> None:
        """Put the previous handlers back."""
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()


class IgnoreSignals:
    """A loader ``worker_init_fn`` that makes the worker ignore the
    preemption signals (Slurm signals every process of a step, loader
    workers included), then runs the loader's own ``worker_init_fn``.

    Args:
        numbers (Sequence[int]): Signals to ignore.
        init_fn (callable, optional): The loader's ``worker_init_fn``.
    """

    def __init__(self, numbers: Sequence[int], init_fn=None) -> None:
        self.numbers = tuple(numbers)
        self.init_fn = init_fn

    def __call__(self, worker_id: int) -> None:
        for number in self.numbers:
            signal.signal(number, signal.SIG_IGN)
        if self.init_fn is not None:
            self.init_fn(worker_id)


class StopAgreement:
    """All ranks decide together after which iteration they stop.

    With one process the local request is read at the end of each
    iteration. With several, :meth:`begin_iteration` posts an asynchronous
    ``all_reduce(MAX)`` of the local request on a gloo group (a CPU tensor:
    no GPU synchronisation) and :meth:`should_stop` waits for it at the end
    of the same iteration, when every rank has long posted its own: all
    ranks stop after the first iteration at whose start any rank had been
    signalled. Must be built by every rank at the same point (it creates a
    process group).
    """

    def __init__(self) -> None:
        self.world_size = torch_dist.get_world_size() if (
            torch_dist.is_available()
            and torch_dist.is_initialized()) else 1
        self.group = None
        if self.world_size > 1:
            self.group = torch_dist.new_group(backend='gloo')
        self._pending = None

    def begin_iteration(self, requested: bool) -> None:
        """Post this rank's request (several processes only)."""
        if self.group is None:
            return
        flag = torch.tensor([int(requested)], dtype=torch.int32)
        work = torch_dist.all_reduce(
            flag, op=torch_dist.ReduceOp.MAX, group=self.group,
            async_op=True)
        self._pending = (flag, work)

    def should_stop(self, requested: bool) -> bool:
        """Whether to stop after the iteration that just ended."""
        if self.group is None:
            return requested
        flag, work = self._pending
        self._pending = None
        work.wait()
        return bool(flag.item())

    def gather(self, obj) -> list:
        """Every rank's ``obj``, by rank (on the gloo group); ``[obj]``
        with one process."""
        if self.group is None:
            return [obj]
        objects = [None] * self.world_size
        torch_dist.all_gather_object(objects, obj, group=self.group)
        return objects

    def barrier(self) -> None:
        """Wait for every rank (on the gloo group)."""
        if self.group is not None:
            torch_dist.barrier(group=self.group)

    def close(self) -> None:
        """Release the gloo group."""
        if self.group is not None:
            torch_dist.destroy_process_group(self.group)
            self.group = None


def requeue_slurm_job(requeue: Union[bool, str] = 'auto') -> bool:
    """Requeue this Slurm job (``scontrol requeue $SLURM_JOB_ID``).

    Args:
        requeue (bool | str): ``'auto'``: when ``SLURM_JOB_ID`` is set and
            ``scontrol`` is on the ``PATH``; True: whenever
            ``SLURM_JOB_ID`` is set (a failure is logged as an error);
            False: never.

    Returns:
        bool: Whether ``scontrol requeue`` succeeded.
    """
    job = os.environ.get('SLURM_JOB_ID')
    if requeue is False or not job:
        return False
    if requeue == 'auto' and shutil.which('scontrol') is None:
        return False
    level = logging.ERROR if requeue is True else logging.WARNING
    try:
        proc = subprocess.run(['scontrol', 'requeue', job],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        print_log(f'`scontrol requeue {job}` failed: {e}', logger='current',
                  level=level)
        return False
    if proc.returncode != 0:
        print_log(
            f'`scontrol requeue {job}` failed (exit status '
            f'{proc.returncode}): {(proc.stderr or proc.stdout).strip()}. '
            'The job was not submitted with --requeue, or requeueing is '
            'not allowed on this cluster; restart it with --resume.',
            logger='current', level=level)
        return False
    print_log(f'Requeued Slurm job {job} (`scontrol requeue`): it resumes '
              'from this checkpoint.', logger='current',
              level=logging.WARNING)
    return True
