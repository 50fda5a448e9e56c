"""Train the runs of a comparison through a launcher and follow them.

:class:`Scheduler` takes the runs (:class:`~.launchers.Task`) of a
comparison and, for each, first looks at what its work dir records
(:func:`check_run`):

* finished with the same config: shown as done, not trained again;
* a job still queued or running (started by an earlier comparison that
  exited, e.g. with ``--no-wait``, or was killed): followed to its end, not
  started a second time. If that job trains another config, the run is
  reported as blocked and left alone;
* a job that ended without finishing: reported with its exit status and log,
  and started again (it resumes from its last checkpoint);
* otherwise: started.

It starts runs while the launcher has room, polls the jobs (one ``squeue``
for all slurm jobs) and shows each run's state, epoch and metric on a
:class:`~.progress.ProgressBoard`, until every run has ended (or, without
``wait``, until every run is submitted). A run that fails does not stop the
others. When the comparison is interrupted (Ctrl-C, SIGTERM), the local
processes it started are stopped (they resume next time); slurm jobs run on.

What keeps two jobs from writing one work dir: the root lock of the
comparison (:func:`root_lock`: one comparison per root at a time), the run's
own lock, held by whatever trains it (``run.lock``, see
:mod:`sema_mm.comparison.job_wrapper`), and ``job.json``, which names a
submitted slurm job before it has started (and is looked up in the queue
by its name if the comparison died before recording its id).
"""
import os
import os.path as osp
import signal
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .job_wrapper import (
    ATTEMPT,
    FINISHED,
    RUN_LOCK,
    STARTED,
    DirLock,
    describe_holder,
    holder_info,
    read_json,
    write_json,
)
from .launchers import (
    JOB,
    SLURM_QUEUED,
    Job,
    SubmitError,
    Task,
    slurm_jobs,
)
from .progress import ProgressBoard, ScalarsFollower
from .run_errors import last_exception

#: The lock file of a comparison root.
ROOT_LOCK = 'compare.lock'
#: Polls a slurm job may be missing from the queue without a record of its
#: end before it is taken for dead (the record may still be on its way
#: through a shared file system).
MISSING_POLLS = 3


class CompareBusyError(RuntimeError):
    """Another comparison is running on the same root."""


def root_lock(work_root: str, command: str = '') -> DirLock:
    """Take the lock of a comparison root (``<work_root>/compare.lock``).

    Args:
        work_root (str): The comparison's root.
        command (str): The command line, recorded for the message another
            comparison shows.

    Returns:
        DirLock: The held lock (release it, or use it as a context
        manager).

    Raises:
        CompareBusyError: When another comparison holds it.
    """
    lock = DirLock(osp.join(work_root, ROOT_LOCK))
    if not lock.acquire(holder_info(command=command)):
        raise CompareBusyError(
            f'another comparison is running on {work_root}: '
            f'{describe_holder(lock.holder())}. Two comparisons on one root '
            'would train the same runs twice: wait for it to end (or stop '
            'it), or give this one another --work-root.')
    return lock


@dataclass
class RunCheck:
    """What a run's work dir says (see :func:`check_run`).

    Attributes:
        state (str): ``'finished'`` (this config), ``'queued'`` or
            ``'running'`` (a job is at it), ``'failed'`` (its last job ended
            without finishing) or ``'idle'``.
        job (dict, optional): The job's record (``job.json``), if any.
        digest (str, optional): The digest of the config ``started.json``
            names.
        detail (str): How a failed job ended, or which job is at it.
    """

    state: str
    job: Optional[dict] = None
    digest: Optional[str] = None
    detail: str = ''


def _job_state(work_dir: str, record: Optional[dict],
               queue: Optional[Dict[str, tuple]]) -> str:
    """``'queued'``, ``'running'`` or ``'ended'`` for the job of
    ``record`` (a run trained by no recorded job: whether its lock is
    held). An unanswered ``squeue`` (``queue`` None) counts as running."""
    launcher = (record or {}).get('launcher')
    if launcher == 'slurm':
        if queue is None:
            return 'running'
        job_id = record.get('job_id')
        if not job_id:  # died between sbatch and recording the id
            found = [i for i, (_, name) in queue.items()
                     if name == record.get('name')]
            if not found:
                return 'ended'
            record['job_id'] = job_id = found[0]
        state = queue.get(job_id, (None, ))[0]
        if state is None:
            return 'ended'
        return 'queued' if state in SLURM_QUEUED else 'running'
    held = DirLock(osp.join(work_dir, RUN_LOCK)).is_held()
    return 'running' if held else 'ended'


def _ending(work_dir: str, record: Optional[dict]) -> Tuple[Optional[int],
                                                            str]:
    """The exit status of the job of ``record`` (from ``attempt.json``)
    and a description of how it ended."""
    attempt = read_json(osp.join(work_dir, ATTEMPT)) or {}
    token = (record or {}).get('token')
    if attempt.get('token') != token or attempt.get('rc') is None:
        return None, 'ended without recording its end (killed?)'
    return attempt['rc'], f'exit status {attempt["rc"]}'


def check_run(work_dir: str, digest: str,
              queue: Optional[Dict[str, tuple]] = None) -> RunCheck:
    """What the work dir of a run records, and whether a job is at it.

    Args:
        work_dir (str): The run's work dir.
        digest (str): The digest of the config it should train.
        queue (dict, optional): :func:`~.launchers.slurm_jobs`, for runs
            whose job is a slurm job.

    Returns:
        RunCheck: The state.
    """
    started = (read_json(osp.join(work_dir, STARTED)) or {}).get('digest')
    finished = read_json(osp.join(work_dir, FINISHED)) or {}
    if finished.get('digest') == digest:
        return RunCheck('finished', digest=digest)
    record = read_json(osp.join(work_dir, JOB))
    state = _job_state(work_dir, record, queue)
    if state != 'ended':
        label = f'slurm job {record["job_id"]}' if (record or {}).get(
            'job_id') else describe_holder(
                DirLock(osp.join(work_dir, RUN_LOCK)).holder())
        return RunCheck(state, record, started, label)
    if record is not None and finished.get('digest') != started:
        rc, how = _ending(work_dir, record)
        if rc != 0:
            return RunCheck('failed', record, started,
                            f'{how}; log: {record.get("log")}')
    return RunCheck('idle', record, started)


def queue_for(tasks: Sequence[Task]) -> Optional[Dict[str, tuple]]:
    """The slurm queue (:func:`~.launchers.slurm_jobs`) if a run of
    ``tasks`` records a slurm job, else an empty one (no ``squeue``)."""
    if any((read_json(osp.join(t.work_dir, JOB)) or {}).get('launcher') ==
           'slurm' for t in tasks):
        return slurm_jobs()
    return {}


@dataclass
class Outcome:
    """How the runs of a comparison ended up.

    Attributes:
        done (list): Tasks finished (now or before).
        failed (list): ``(task, detail)`` of the runs that failed or could
            not start.
        active (list): Jobs still queued or running (without ``wait``).
    """

    done: List[Task] = field(default_factory=list)
    failed: List[Tuple[Task, str]] = field(default_factory=list)
    active: List[Job] = field(default_factory=list)


class Scheduler:
    """Start the runs of a comparison with a launcher and follow them (see
    the module docstring).

    Args:
        launcher: A launcher of :mod:`.launchers`.
        board (ProgressBoard): Where the runs' states are shown.
        wait (bool): Follow the jobs to their end (False: return once every
            run is submitted). Defaults to True.
        poll_s (float): Seconds between two looks at running jobs.
        force (bool): Train finished runs again.
    """

    def __init__(self, launcher, board: ProgressBoard, wait: bool = True,
                 poll_s: float = 2.0, force: bool = False) -> None:
        self.launcher = launcher
        self.board = board
        self.wait = wait
        self.poll_s = poll_s
        self.force = force
        self.active: List[Job] = []
        self.outcome = Outcome()
        self._followers: Dict[str, ScalarsFollower] = {}

    # --------------------------------------------------------- inspection
    def _show(self, task: Task, state: str, **kwargs) -> None:
        self.board.update(task.key, state=state, unit=task.unit,
                          total=task.total, **kwargs)

    def _follow(self, task: Task) -> ScalarsFollower:
        follower = self._followers.get(task.key)
        if follower is None:
            follower = self._followers[task.key] = ScalarsFollower(
                task.work_dir)
        follower.poll()
        return follower

    def _show_progress(self, task: Task, state: str, **kwargs) -> None:
        follower = self._follow(task)
        self._show(task, state, done=follower.done(task.unit),
                   values=follower.val, **kwargs)

    def _triage(self, tasks: Sequence[Task]) -> List[Task]:
        """Show what every run's work dir records; adopt the jobs still at
        work; return the runs to start, in order."""
        queue = queue_for(tasks)
        pending = []
        for task in tasks:
            check = check_run(task.work_dir, task.digest, queue)
            if check.state == 'finished' and not self.force:
                record = read_json(osp.join(task.work_dir, FINISHED)) or {}
                self._show_progress(task, 'done', wall_s=record.get('wall_s'),
                                    detail='finished before')
                self.outcome.done.append(task)
            elif check.state in ('queued', 'running'):
                if check.digest == task.digest and not self.force:
                    self._adopt(task, check)
                else:
                    detail = (f'blocked: {check.detail} is writing this '
                              'folder for another config; let it end or '
                              'stop it')
                    self._show(task, 'failed', detail=detail)
                    self.outcome.failed.append((task, detail))
            else:
                if check.state == 'failed':
                    self.board.note(f'{task.name}: its last job '
                                    f'{check.detail}')
                self._show(task, 'queued')
                pending.append(task)
        return pending

    def survey(self, tasks: Sequence[Task]) -> None:
        """Show the state of every run (finished, queued, running, failed,
        or not started), starting nothing."""
        queue = queue_for(tasks)
        for task in tasks:
            check = check_run(task.work_dir, task.digest, queue)
            record = read_json(osp.join(task.work_dir, FINISHED)) or {}
            if check.state == 'finished':
                state, detail = 'done', ''
            elif check.state == 'idle':
                state = 'queued'
                detail = 'not finished' if osp.isdir(task.work_dir) else \
                    'not started'
            else:
                state, detail = check.state, check.detail
            self._show_progress(task, state, detail=detail,
                                wall_s=record.get('wall_s'))
        self.board.close(timed=False)

    def _adopt(self, task: Task, check: RunCheck) -> None:
        record = check.job or dict(launcher='local', token=None,
                                   log=osp.join(task.work_dir, 'train.log'))
        job = Job(task, record, adopted=True)
        self.launcher_adopt(job)
        self.active.append(job)
        self._show_progress(task, check.state,
                            detail=f'{check.detail}, started earlier')

    def launcher_adopt(self, job: Job) -> None:
        """Let the launcher count an adopted job (slots, dependency
        lines)."""
        adopt = getattr(self.launcher, 'adopt', None)
        if adopt is not None and job.record.get('launcher') == \
                self.launcher.name:
            adopt(job)

    # ------------------------------------------------------------ running
    def _has_room(self) -> bool:
        capacity = self.launcher.capacity
        if capacity is None:
            return True
        mine = [j for j in self.active
                if j.record.get('launcher') == self.launcher.name]
        return len(mine) < capacity

    def _launch(self, task: Task) -> None:
        message = task.prepare()
        if message:
            self.board.note(f'{task.name}: {message}')
        token = uuid.uuid4().hex
        job_path = osp.join(task.work_dir, JOB)
        planned = getattr(self.launcher, 'job_name', None)
        if planned is not None:
            # Named before it is submitted: found in the queue by its name
            # should this process die before recording the job id.
            write_json(job_path, dict(launcher=self.launcher.name,
                                      token=token, job_id=None,
                                      name=planned(task)))
        elif osp.exists(job_path):
            os.remove(job_path)
        if self.launcher.name == 'in-process':  # trains within submit()
            self._show(task, 'running', done=0)
        try:
            job = self.launcher.submit(task, token)
        except SubmitError as e:
            if osp.exists(job_path):
                os.remove(job_path)
            self._show(task, 'failed', detail=str(e).splitlines()[0])
            self.outcome.failed.append((task, str(e)))
            raise
        if job.record.get('launcher') != 'in-process':
            write_json(job_path, job.record)
        self.active.append(job)
        self._show(task, 'queued' if job.record.get('job_id') else 'running',
                   detail=job.label)

    def _state(self, job: Job, queue: Optional[Dict[str, tuple]]) -> str:
        if job.rc is not None:
            return 'ended'
        if job.proc is not None:
            job.rc = job.proc.poll()
            return 'running' if job.rc is None else 'ended'
        state = _job_state(job.task.work_dir, job.record, queue)
        if state == 'ended' and job.record.get('launcher') == 'slurm':
            rc, _ = _ending(job.task.work_dir, job.record)
            if rc is None and self._finished(job.task) is None:
                job.missing_polls += 1
                if job.missing_polls < MISSING_POLLS:
                    return 'running'
        return state

    def poll(self) -> None:
        """Look at every active job once; show its progress; finish the
        ended ones."""
        queue: Optional[Dict[str, tuple]] = {}
        if any(j.record.get('launcher') == 'slurm' and j.rc is None
               for j in self.active):
            queue = slurm_jobs()
        for job in list(self.active):
            state = self._state(job, queue)
            if state == 'ended':
                self._finish(job)
            else:
                self._show_progress(job.task, state)
        if self.board.mode == 'tty':
            self.board.draw(force=False)
        else:
            self.board.heartbeat()

    @staticmethod
    def _finished(task: Task) -> Optional[dict]:
        """``finished.json`` of ``task`` if it records its config."""
        finished = read_json(osp.join(task.work_dir, FINISHED)) or {}
        return finished if finished.get('digest') == task.digest else None

    def _finish(self, job: Job) -> None:
        self.active.remove(job)
        release = getattr(self.launcher, 'release', None)
        if release is not None:
            release(job)
        task = job.task
        finished = self._finished(task)
        if finished is not None:
            self._show_progress(task, 'done', wall_s=finished.get('wall_s'),
                                detail='')
            self.outcome.done.append(task)
            return
        rc, how = _ending(task.work_dir, job.record)
        if job.record.get('error'):
            how = job.record['error']
        elif job.rc is not None and rc is None:
            how = f'exit status {job.rc}'
        error = None if job.record.get('error') else last_exception(job.log)
        detail = f'{how}; log: {job.log}' + (f'; it raised {error}'
                                             if error else '')
        self._show_progress(task, 'failed', detail=detail)
        self.board.note(f'{task.name} failed: {detail}. The next run of '
                        'this command starts it again, resuming from its '
                        'last checkpoint.')
        self.outcome.failed.append((task, detail))

    def run(self, tasks: Sequence[Task]) -> Outcome:
        """Start and follow ``tasks``; return how they ended."""
        pending = deque(self._triage(tasks))
        restore = None
        if threading.current_thread() is threading.main_thread():
            restore = signal.signal(signal.SIGTERM, _interrupt)
        try:
            while pending or (self.active and self.wait):
                while pending and self._has_room():
                    try:
                        self._launch(pending.popleft())
                    except SubmitError as e:
                        self._not_submitted(pending, e)
                self.poll()
                if pending or (self.active and self.wait):
                    time.sleep(self.poll_s)
        except BaseException:
            self._interrupted()
            raise
        finally:
            if restore is not None:
                signal.signal(signal.SIGTERM, restore)
        self.outcome.active = list(self.active)
        self.board.close()
        return self.outcome

    def _not_submitted(self, pending: deque, error: SubmitError) -> None:
        """After a refused submission: report it, start nothing more (the
        same refusal would follow), follow what was started."""
        self.board.note(f'{error}; not submitting the {len(pending)} '
                        'other run(s)')
        while pending:
            task = pending.popleft()
            self._show(task, 'failed', detail='not submitted')
            self.outcome.failed.append((task, 'not submitted'))

    def _interrupted(self) -> None:
        """Stop the local processes this comparison started; say what
        goes on."""
        mine = [j for j in self.active if not j.adopted]
        running = [j for j in mine
                   if j.proc is not None and j.proc.poll() is None]
        self.launcher.stop(mine)
        self.board.close()
        stopped = [j for j in running if not self._finished(j.task)]
        others = [j for j in self.active if j.proc is None]
        if stopped:
            print(f'interrupted: stopped {len(stopped)} run(s); they resume '
                  'from their last checkpoint next time. Finished runs are '
                  'kept.', file=sys.stderr)
        if others:
            print(f'{len(others)} job(s) go on without this process: '
                  + ', '.join(f'{j.task.name} ({j.label})' for j in others)
                  + '. The same command waits for them.', file=sys.stderr)


def _interrupt(signum, frame) -> None:
    """SIGTERM handler: stop like Ctrl-C, so that clean-up runs."""
    raise KeyboardInterrupt(f'signal {signum}')
