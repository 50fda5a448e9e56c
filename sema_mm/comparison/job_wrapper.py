"""Run one training run of a comparison as a job and record how it ended.

``tools/compare.py`` starts every run it launches as a job (``--launcher
local`` or ``slurm``, or ``--subprocess``) through this file, run by its
path so that a job imports only the standard library (not torch twice)::

    python sema_mm/comparison/job_wrapper.py WORK_DIR TOKEN -- COMMAND [ARGS]

It works in the run's folder ``WORK_DIR``:

1. it takes the run's lock, ``run.lock`` (:class:`DirLock`), or exits with
   status :data:`BUSY` naming the process that holds it: two jobs never
   write one work dir;
2. it exits at once (status 0) if ``finished.json`` already records the
   config that ``started.json`` names;
3. it writes ``attempt.json``: ``TOKEN`` (the comparison's name for this
   submission), the host, its pid, the slurm job id and the start time;
4. it runs ``COMMAND`` (e.g. ``tools/train.py`` or ``tools/slurm_train.sh``)
   with the lock's file descriptor inherited, so that the lock stays held
   while the command runs even if this process is killed; SIGTERM, SIGINT
   and SIGHUP are passed on to it;
5. after exit status 0 it writes ``finished.json`` (``started.json`` plus the
   wall time and the end time); then it completes ``attempt.json`` with the
   exit status and the end time, and exits with the command's status.

Records are written atomically (a temporary file renamed over the
target, as :mod:`sema_mm.records` writes), so a reader sees them complete or
not at all. :mod:`sema_mm.comparison.jobs` reads them. The file imports only
the standard library, so that a job does not import torch besides the
training process.
"""
import argparse
import errno
import fcntl
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

#: Written when training starts: ``digest`` (and config, variant, seed).
STARTED = 'started.json'
#: Written when training returned: ``started.json`` plus ``wall_s`` and
#: ``finished``.
FINISHED = 'finished.json'
#: Written by this script for each start: token, host, pid, job, started;
#: then ``ended`` and ``rc``.
ATTEMPT = 'attempt.json'
#: The run's lock file.
RUN_LOCK = 'run.lock'
#: Exit status when another process holds the run's lock (EX_TEMPFAIL).
BUSY = 75


def read_json(path: str) -> Optional[Any]:
    """The JSON record in ``path``, or None if it is missing or unreadable
    (as :func:`sema_mm.records.read_json`; this file, run by path, imports
    only the standard library)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_json(path: str, data: Any) -> None:
    """Write the JSON record ``data`` to ``path`` atomically: a temporary
    file in the same folder, renamed over ``path``."""
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def describe_holder(holder: Optional[dict]) -> str:
    """``'pid 12 on host (slurm job 7) since 10:02:03'`` for a lock's holder
    record (what :meth:`DirLock.acquire` wrote)."""
    if not holder:
        return 'another process'
    text = f'pid {holder.get("pid")} on {holder.get("host")}'
    if holder.get('job'):
        text += f' (slurm job {holder["job"]})'
    if holder.get('started'):
        text += time.strftime(' since %H:%M:%S',
                              time.localtime(holder['started']))
    if holder.get('command'):
        text += f': {holder["command"]}'
    return text


class DirLock:
    """An exclusive lock on a file (``flock``) that says who holds it.

    A ``flock`` lock belongs to the open file: it is released when every
    process holding the descriptor has exited, however it ended (SIGKILL
    included), and a second open of the file, in this process or another,
    cannot take it meanwhile. The holder writes a JSON record about itself
    into the file. On a file system without ``flock`` the lock is not
    enforced (a warning says so).

    Args:
        path (str): The lock file (created if missing, never removed).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = None

    @property
    def fileno(self) -> int:
        """The descriptor holding the lock (to pass on to a child)."""
        assert self._file is not None, 'the lock is not held'
        return self._file.fileno()

    def acquire(self, info: Dict[str, Any]) -> bool:
        """Take the lock without waiting and record ``info`` in the file.

        Returns:
            bool: False when another open file holds it.
        """
        os.makedirs(osp.dirname(self.path) or '.', exist_ok=True)
        f = open(self.path, 'a+')
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                f.close()
                return False
            print(f'warning: cannot lock {self.path} ({e}); two writers of '
                  'this folder would not be stopped', file=sys.stderr)
        f.seek(0)
        f.truncate()
        f.write(json.dumps(info) + '\n')
        f.flush()
        self._file = f
        return True

    def release(self) -> None:
        """Give the lock back (the file stays)."""
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def holder(self) -> Optional[dict]:
        """The record of the last process that took the lock, if any."""
        try:
            with open(self.path) as f:
                return json.loads(f.readline())
        except (OSError, ValueError):
            return None

    def is_held(self) -> bool:
        """Whether a process (this one included, through another open
        file) holds the lock now."""
        if not osp.exists(self.path):
            return False
        try:
            with open(self.path) as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
        except OSError as e:
            return e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
        return False

    def __enter__(self) -> 'DirLock':
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def holder_info(**extra: Any) -> Dict[str, Any]:
    """What a lock holder records: host, pid, slurm job id, start time."""
    info = dict(host=socket.gethostname(), pid=os.getpid(),
                job=os.environ.get('SLURM_JOB_ID'), started=time.time())
    info.update(extra)
    return info


def write_finished(work_dir: str, wall_s: float) -> dict:
    """Write ``finished.json``: ``started.json`` with the training time
    ``wall_s`` and the end time. Returns the record."""
    record = dict(read_json(osp.join(work_dir, STARTED)) or {})
    record.update(wall_s=wall_s, finished=time.strftime('%Y-%m-%d %H:%M:%S'))
    write_json(osp.join(work_dir, FINISHED), record)
    return record


def is_finished(work_dir: str) -> bool:
    """Whether ``finished.json`` records the config ``started.json``
    names."""
    started = read_json(osp.join(work_dir, STARTED)) or {}
    finished = read_json(osp.join(work_dir, FINISHED)) or {}
    return bool(started.get('digest')) and \
        finished.get('digest') == started.get('digest')


def run_job(work_dir: str, token: str, command: List[str]) -> int:
    """Steps 1-5 of the module docstring; returns the exit status."""
    lock = DirLock(osp.join(work_dir, RUN_LOCK))
    info = holder_info(token=token)
    if not lock.acquire(info):
        print(f'[job] {work_dir} is being written by '
              f'{describe_holder(lock.holder())}; not starting a second '
              'run there', file=sys.stderr, flush=True)
        return BUSY
    attempt_path = osp.join(work_dir, ATTEMPT)
    with lock:
        if is_finished(work_dir):
            print(f'[job] {work_dir} has finished before; nothing to do',
                  flush=True)
            write_json(attempt_path, dict(info, ended=time.time(), rc=0))
            return 0
        write_json(attempt_path, dict(info, ended=None, rc=None))
        print(f'[job] {time.strftime("%Y-%m-%d %H:%M:%S")} on '
              f'{info["host"]}: {" ".join(command)}', flush=True)
        start = time.time()
        child = subprocess.Popen(command, pass_fds=(lock.fileno, ))

        def forward(signum, frame) -> None:
            if child.poll() is None:
                child.send_signal(signum)

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, forward)
        rc = child.wait()
        if rc < 0:
            rc = 128 - rc  # killed by a signal, as a shell reports it
        wall_s = time.time() - start
        if rc == 0:
            write_finished(work_dir, wall_s)
        write_json(attempt_path, dict(info, ended=time.time(), rc=rc))
        print(f'[job] exit status {rc} after {wall_s:.0f} s', flush=True)
    return rc


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``WORK_DIR TOKEN -- COMMAND...`` and run the job."""
    parser = argparse.ArgumentParser(
        description='Run one comparison run as a job (see the module '
        'docstring of sema_mm/comparison/job_wrapper.py).')
    parser.add_argument('work_dir', help='the run\'s work dir')
    parser.add_argument('token', help='identifies this submission')
    parser.add_argument('command', nargs=argparse.REMAINDER,
                        help='-- then the command that trains the run')
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ['--'] \
        else args.command
    if not command:
        parser.error('no command after --')
    return run_job(args.work_dir, args.token, command)


if __name__ == '__main__':
    sys.exit(main())
