"""Training processes that end with their launcher (Linux only).

torchrun starts every worker in a session of its own, so when torchrun is
killed with SIGKILL (which it cannot pass on) its workers run on, keeping
their GPUs and memory. :func:`end_with_launcher`, called by
``tools/train.py`` and ``tools/test.py`` when torchrun started them (see
:func:`sema_mm.cli.args.parse_launch_args`), asks the kernel to send the
process SIGKILL when its parent ends (``prctl(PR_SET_PDEATHSIG)``).

The launcher may have died before that call (the process then already
belongs to another parent). ``tools/dist_run.sh`` therefore records
torchrun's pid in ``SEMA_LAUNCHER_PID`` (torchrun is ``exec``-ed, so it
keeps the script's pid), and after the call the process checks that its
parent is still that process, or that process still runs. A process whose
launcher is gone exits at once. Without the record (torchrun started by
hand) there is no such check: being handed to pid 1 proves nothing where
torchrun is itself pid 1 (a container's entry point).

SIGKILL, not SIGTERM: torchrun's rendezvous store ends with torchrun, so a
worker that tried to write a checkpoint first could wait in a collective
for good. What the run loses is what a SIGKILL of the whole job loses: the
training since its last checkpoint (checkpoints are written atomically,
:mod:`sema_mm.compat.atomic_checkpoints`). DataLoader worker processes are
not covered here: torch's workers check every 5 s, while waiting for work,
whether their parent still runs, and end when it does not.

On other systems (no ``prctl``) nothing is done.
"""
import ctypes
import os
import signal
import sys
from typing import Optional

#: Set by ``tools/dist_run.sh`` to the pid of the torchrun it starts.
LAUNCHER_PID = 'SEMA_LAUNCHER_PID'
#: ``prctl`` option: the signal sent when the parent ends.
PR_SET_PDEATHSIG = 1


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not ended (a zombie has)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ('Z', 'X')


def launcher_gone(expected: Optional[int]) -> bool:
    """Whether the launcher ``expected`` (a pid, None: unknown) has ended:
    it is not this process's parent any more and it does not run."""
    return expected is not None and os.getppid() != expected and \
        not _running(expected)


def end_with_launcher() -> bool:
    """Have this process killed (SIGKILL) when its parent ends, and exit at
    once if the launcher has already ended (see the module docstring).
    Reads and removes ``SEMA_LAUNCHER_PID`` from the environment, so that
    the processes this one starts do not take it for theirs.

    Returns:
        bool: Whether the parent-death signal is set (False on systems
        without ``prctl``).

    Raises:
        SystemExit: When the launcher has already ended.
    """
    recorded = os.environ.pop(LAUNCHER_PID, '')
    if not sys.platform.startswith('linux'):
        return False
    expected = int(recorded) if recorded.isdigit() else None
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        return False
    if launcher_gone(expected):
        raise SystemExit(
            f'the launcher of this process (pid {expected or "unknown"}) '
            'has ended; exiting instead of training without it')
    return True
