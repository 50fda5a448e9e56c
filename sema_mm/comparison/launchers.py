"""How a comparison starts its runs: here, as local processes, or on slurm.

Three launchers start a :class:`Task` (one run of a comparison, its config
already written into its work dir) and return a :class:`Job`:

:class:`InProcessLauncher`
    trains in this process, one run at a time (``tools/compare.py``'s
    default and ``make demo``).
:class:`LocalLauncher`
    starts each run as a process on this machine, ``slots`` at a time. With
    GPUs every slot owns ``gpus_per_run`` of them (``CUDA_VISIBLE_DEVICES``)
    and every run gets its own rendezvous port, so a machine with ``G`` GPUs
    trains ``G / gpus_per_run`` runs at once; without GPUs, ``parallel`` CPU
    runs at once, each with its share of the cores. A run is
    ``tools/train.py`` (one process) or ``tools/dist_train.sh`` (several).
:class:`SlurmLauncher`
    submits each run as its own batch job (``sbatch``) whose one step is
    ``tools/slurm_train.sh``: all at once, and with ``max_jobs`` chained by
    ``--dependency=afterany`` into that many lines so that at most that
    many run at a time, even after the comparison has exited. The job's
    name says which run it is (``<config>.<variant>.seed<s>.<root id>``)
    and its output goes to ``<work_dir>/slurm-<job id>.log``. Jobs are
    requeueable (``--requeue``), their training processes get SIGUSR1
    :data:`SIGNAL_BEFORE_S` seconds before the time limit
    (``--signal=USR1@<s>``: the steps' processes, not the batch shell; a
    ``--signal`` in ``sbatch_args`` replaces it), and every start of a job,
    requeued ones included, resumes its run from its newest checkpoint
    (``--resume``).

Local and slurm runs go through ``sema_mm/comparison/job_wrapper.py`` (see
there), which takes the run's lock and writes ``attempt.json`` and, on success,
``finished.json``; :mod:`.jobs` reads those records. Each job is also
recorded in ``<work_dir>/job.json`` (launcher, token, pid or slurm job id,
log), so that a later comparison finds the job while it runs.
"""
import getpass
import hashlib
import os
import os.path as osp
import shlex
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from .job_wrapper import RUN_LOCK, DirLock, describe_holder, holder_info
from .job_wrapper import write_finished as write_finished_record
from .slurm_cpus import default_cpus_per_task, refusal_hint

PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPO = osp.dirname(PACKAGE)
# An installed wheel has the tools under sema_mm/.mim (see setup.py).
TOOLS = osp.join(PACKAGE, '.mim', 'tools') if osp.isdir(
    osp.join(PACKAGE, '.mim', 'tools')) else osp.join(REPO, 'tools')
#: The job wrapper, run by path (it imports only the standard library).
JOB_SCRIPT = osp.join(REPO, 'sema_mm', 'comparison', 'job_wrapper.py')
#: The record of a run's job, written by the comparison.
JOB = 'job.json'
#: Seconds before a slurm job's time limit at which its training processes
#: get SIGUSR1 (Slurm may send it up to 60 s earlier): time to finish the
#: iteration and write a checkpoint (``tools/slurm_batch_train.sh`` has the
#: same default).
SIGNAL_BEFORE_S = 180
#: slurm states of a job that has not started yet.
SLURM_QUEUED = ('PENDING', 'CONFIGURING', 'REQUEUED', 'REQUEUE_HOLD',
                'REQUEUE_FED', 'RESV_DEL_HOLD')


@dataclass
class Task:
    """One run of a comparison, ready to train.

    Attributes:
        key (str): Its path under the comparison's root,
            ``<config>/<variant>/seed<s>``.
        name (str): Its name in messages, e.g. ``'digits SEMA seed 1'``.
        work_dir (str): Its work dir.
        config (str): The config file it trains (in ``work_dir``).
        digest (str): SHA-1 of that config's text.
        unit (str): ``'epoch'`` or ``'iter'``.
        total (int, optional): Epochs (iterations) of training.
        prepare (callable): Writes the config and ``started.json`` (called
            right before the run is started).
        payload (Any): What the comparison needs to train it in process.
    """

    key: str
    name: str
    work_dir: str
    config: str
    digest: str
    unit: str = 'epoch'
    total: Optional[int] = None
    prepare: Callable[[], None] = lambda: None
    payload: Any = None


@dataclass
class Job:
    """A started run.

    Attributes:
        task (Task): The run.
        record (dict): Its ``job.json``: ``launcher``, ``token``, ``log``
            and ``pid`` (local) or ``job_id`` (slurm).
        proc (Popen, optional): The process, when this comparison started
            it on this machine.
        slot (int, optional): The local slot it occupies.
        rc (int, optional): Exit status once known.
        adopted (bool): Started by an earlier comparison.
    """

    task: Task
    record: Dict[str, Any]
    proc: Optional[subprocess.Popen] = None
    slot: Optional[int] = None
    rc: Optional[int] = None
    adopted: bool = False
    missing_polls: int = field(default=0, repr=False)

    @property
    def log(self) -> str:
        """Where the run's output goes."""
        return self.record.get('log', '')

    @property
    def label(self) -> str:
        """``'job 123'`` (slurm) or ``'pid 456'`` (local)."""
        if self.record.get('job_id'):
            return f'job {self.record["job_id"]}'
        if self.record.get('pid'):
            return f'pid {self.record["pid"]}'
        return ''


class SubmitError(RuntimeError):
    """A launcher could not start a run (e.g. ``sbatch`` refused it)."""


def tool_env(**extra: str) -> Dict[str, str]:
    """The environment of a tool run: this interpreter's folder first on
    ``PATH`` (the scripts call ``python``), the repository on
    ``PYTHONPATH``."""
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + (os.pathsep + env['PYTHONPATH']
                                if env.get('PYTHONPATH') else '')
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env.get(
        'PATH', '')
    env.update(extra)
    return env


def train_command(task: Task, procs: int = 1) -> List[str]:
    """``tools/train.py`` (or ``tools/dist_train.sh`` for ``procs`` > 1)
    for ``task``, resuming from its last checkpoint if it has one."""
    if procs > 1:
        cmd = ['bash', osp.join(TOOLS, 'dist_train.sh'), task.config,
               str(procs)]
    else:
        cmd = [sys.executable, osp.join(TOOLS, 'train.py'), task.config]
    return cmd + ['--work-dir', task.work_dir, '--resume']


def job_command(task: Task, token: str, command: Sequence[str]) -> List[str]:
    """``command`` run through the job wrapper
    ``sema_mm/comparison/job_wrapper.py``."""
    return [sys.executable, JOB_SCRIPT, task.work_dir, token, '--'] + list(
        command)


def free_port(taken: Sequence[int] = ()) -> int:
    """A free TCP port not in ``taken``."""
    while True:
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        if port not in taken:
            return port


def visible_gpus() -> List[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names
    them (``'0'``, ``'1'``... when it is unset)."""
    import torch
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get('CUDA_VISIBLE_DEVICES')
    if listed is not None:
        names = [d.strip() for d in listed.split(',') if d.strip()]
        return names[:count]
    return [str(i) for i in range(count)]


class InProcessLauncher:
    """Trains each run in this process with ``train(task)``, holding the
    run's lock, and writes ``finished.json`` when it returns. A run that
    raises is a failed job; its traceback goes to ``<work_dir>/error.log``.

    Args:
        train (callable): Trains a task (blocks until done).
    """

    name = 'in-process'
    capacity: Optional[int] = 1

    def __init__(self, train: Callable[[Task], None]) -> None:
        self.train = train

    def submit(self, task: Task, token: str) -> Job:
        lock = DirLock(osp.join(task.work_dir, RUN_LOCK))
        record = dict(launcher=self.name, token=token,
                      log=osp.join(task.work_dir, 'error.log'))
        job = Job(task, record)
        if not lock.acquire(holder_info(token=token)):
            raise SubmitError(f'{task.work_dir} is being written by '
                              f'{describe_holder(lock.holder())}')
        with lock:
            start = time.perf_counter()
            try:
                self.train(task)
            except Exception as e:
                with open(record['log'], 'w') as f:
                    f.write(traceback.format_exc())
                record['error'] = f'{type(e).__name__}: {e}'.splitlines()[0]
                job.rc = 1
                return job
            write_finished_record(task.work_dir, time.perf_counter() - start)
        job.rc = 0
        return job

    def stop(self, jobs: Sequence[Job]) -> None:
        """Nothing to stop: an interrupted run stops with this process."""


class LocalLauncher:
    """Starts runs as processes on this machine, one per free slot.

    Args:
        gpus_per_run (int): Processes (GPUs) per run. Defaults to 1.
        parallel (int, optional): Runs at once at most: on a machine without
            GPUs the number of slots (default 1), with GPUs a cap on
            ``G / gpus_per_run``.
        threads (int, optional): CPU threads per process
            (``OMP_NUM_THREADS``); by default, on CPU, the cores shared out
            among the processes of all slots.
        pin_devices (bool): Give each slot its own GPUs (or none, on a
            machine without). False: one slot using what this process sees.
    """

    name = 'local'

    def __init__(self, gpus_per_run: int = 1, parallel: Optional[int] = None,
                 threads: Optional[int] = None,
                 pin_devices: bool = True) -> None:
        self.gpus_per_run = gpus_per_run
        self.threads = threads
        self.slots: List[Optional[str]]
        if not pin_devices:
            self.slots = [None]
        else:
            gpus = visible_gpus()
            if gpus:
                if len(gpus) < gpus_per_run:
                    raise ValueError(
                        f'--gpus-per-run {gpus_per_run} but only '
                        f'{len(gpus)} GPU(s) are visible')
                count = len(gpus) // gpus_per_run
                self.slots = [
                    ','.join(gpus[i * gpus_per_run:(i + 1) * gpus_per_run])
                    for i in range(min(count, parallel or count))
                ]
            else:
                self.slots = [''] * (parallel or 1)
                if threads is None:
                    self.threads = max(
                        1, (os.cpu_count() or 1) //
                        (len(self.slots) * gpus_per_run))
        self.capacity: Optional[int] = len(self.slots)
        self._busy: Dict[int, Job] = {}
        self._ports: List[int] = []

    def describe(self) -> str:
        """What the slots are, for the comparison's first line."""
        if self.slots == [None]:
            return 'one run at a time'
        if self.slots[0]:
            return (f'{len(self.slots)} run(s) at a time on GPUs ' +
                    ' | '.join(self.slots))
        return (f'{len(self.slots)} CPU run(s) at a time, '
                f'{self.threads} thread(s) per process')

    def submit(self, task: Task, token: str) -> Job:
        slot = next(i for i in range(len(self.slots)) if i not in self._busy)
        port = free_port(self._ports)
        self._ports.append(port)
        extra = dict(PORT=str(port), MASTER_PORT=str(port))
        devices = self.slots[slot]
        if devices is not None:
            extra['CUDA_VISIBLE_DEVICES'] = devices
        if self.threads:
            extra['OMP_NUM_THREADS'] = str(self.threads)
        log = osp.join(task.work_dir, 'train.log')
        cmd = job_command(task, token, train_command(task,
                                                     self.gpus_per_run))
        with open(log, 'a') as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=tool_env(**extra),
                start_new_session=True)
        record = dict(launcher=self.name, token=token, pid=proc.pid,
                      host=socket.gethostname(), log=log, devices=devices,
                      submitted=time.time())
        job = Job(task, record, proc=proc, slot=slot)
        self._busy[slot] = job
        return job

    def adopt(self, job: Job) -> None:
        """Give a job started by an earlier comparison (still running) a
        slot: the one with its devices if free, else any free one."""
        free = [i for i in range(len(self.slots)) if i not in self._busy]
        same = [i for i in free
                if self.slots[i] == job.record.get('devices')]
        if free:
            job.slot = (same or free)[0]
            self._busy[job.slot] = job

    def release(self, job: Job) -> None:
        """Free the slot of an ended job."""
        if job.slot is not None and self._busy.get(job.slot) is job:
            del self._busy[job.slot]

    def stop(self, jobs: Sequence[Job], grace_s: float = 20) -> None:
        """Stop the runs this launcher started that still run: SIGTERM to
        each one's process group, SIGKILL after ``grace_s`` seconds."""
        procs = [j.proc for j in jobs
                 if j.proc is not None and j.proc.poll() is None]
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()


def run_slurm(cmd: List[str]) -> subprocess.CompletedProcess:
    """Run a slurm client command; never raises for its exit status."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True,
                              timeout=120)
    except FileNotFoundError:
        raise SubmitError(f'`{cmd[0]}` was not found: is this a slurm '
                          'login node?') from None


def slurm_jobs() -> Optional[Dict[str, tuple]]:
    """This user's queued and running slurm jobs: job id -> (state, name).
    Empty where slurm is not installed; None when ``squeue`` fails (the
    queue is unknown)."""
    cmd = ['squeue', '-h', '-u', getpass.getuser(), '-o', '%i|%T|%j']
    try:
        proc = run_slurm(cmd)
    except SubmitError:  # no squeue here: no job of this user is queued
        return {}
    if proc.returncode != 0:
        return None
    jobs = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split('|', 2)
        if len(parts) == 3:
            jobs[parts[0]] = (parts[1], parts[2])
    return jobs


class SlurmLauncher:
    """Submits each run as a slurm batch job running
    ``tools/slurm_train.sh`` (see the module docstring).

    Args:
        partition (str): slurm partition.
        gpus_per_run (int): Tasks (GPUs) per run. Defaults to 1.
        gpus_per_node (int): GPUs of a node a run may use. Defaults to 8.
        cpus_per_task (int, optional): ``--cpus-per-task``; default
            ``CPUS_PER_TASK`` from the environment, else 5 (as
            ``tools/slurm_run.sh``) or fewer to fit the partition's nodes
            (see :mod:`.slurm_cpus`).
        max_jobs (int, optional): Runs at a time at most.
        threads (int, optional): ``OMP_NUM_THREADS`` of each task; default
            ``cpus_per_task``.
        sbatch_args (Sequence[str]): More ``sbatch`` options, e.g.
            ``['--time=2-00:00:00', '--qos=normal']`` (given last, so a
            ``--signal`` among them replaces the default one).
        root (str): The comparison's root (its id is part of job names).
    """

    name = 'slurm'
    capacity: Optional[int] = None

    def __init__(self, partition: str, gpus_per_run: int = 1,
                 gpus_per_node: int = 8, cpus_per_task: Optional[int] = None,
                 max_jobs: Optional[int] = None,
                 threads: Optional[int] = None,
                 sbatch_args: Sequence[str] = (), root: str = '.') -> None:
        self.partition = partition
        self.gpus = gpus_per_run
        self.per_node = min(gpus_per_run, gpus_per_node)
        self.nodes = -(-gpus_per_run // self.per_node)
        self.cpus_per_task = cpus_per_task or default_cpus_per_task(
            partition, self.per_node)
        self.threads = threads or self.cpus_per_task
        self.max_jobs = max_jobs
        self.sbatch_args = list(sbatch_args)
        self.root_id = hashlib.sha1(
            osp.abspath(root).encode()).hexdigest()[:4]
        # The last job of each of the max_jobs dependency lines.
        self._lines: List[Optional[str]] = [None] * (max_jobs or 0)
        self._next_line = 0

    def describe(self) -> str:
        """What the jobs ask for, for the comparison's first line."""
        limit = f', at most {self.max_jobs} at a time' \
            if self.max_jobs else ''
        return (f'slurm jobs on partition {self.partition}: '
                f'{self.gpus} task(s) (GPU) per run, {self.cpus_per_task} '
                f'CPU(s) per task{limit}')

    def job_name(self, task: Task) -> str:
        """``<config>.<variant>.seed<s>.<root id>``."""
        return f'{task.key.replace("/", ".")}.{self.root_id}'

    def script(self, task: Task, token: str) -> str:
        """The batch script of ``task``."""
        q = shlex.quote
        train = ['bash', osp.join(TOOLS, 'slurm_train.sh'), self.partition,
                 self.job_name(task), task.config, task.work_dir, '--resume']
        return '\n'.join([
            '#!/usr/bin/env bash',
            f'# {task.name}: written by tools/compare.py',
            f'export PATH={q(osp.dirname(sys.executable))}:"$PATH"',
            f'export PYTHONPATH={q(REPO)}${{PYTHONPATH:+:$PYTHONPATH}}',
            f'export GPUS={self.gpus} GPUS_PER_NODE={self.per_node} '
            f'CPUS_PER_TASK={self.cpus_per_task} '
            f'OMP_NUM_THREADS={self.threads}',
            '# Its own rendezvous port: jobs may share a node.',
            'export MASTER_PORT=$((20000 + SLURM_JOB_ID % 40000))',
            'exec ' + ' '.join(q(a) for a in job_command(task, token, train)),
            '',
        ])

    def adopt(self, job: Job) -> None:
        """Count a job submitted by an earlier comparison in a line."""
        if self._lines:
            self._lines[self._next_line] = job.record.get('job_id')
            self._next_line = (self._next_line + 1) % len(self._lines)

    def submit(self, task: Task, token: str) -> Job:
        path = osp.join(task.work_dir, 'job.sh')
        with open(path, 'w') as f:
            f.write(self.script(task, token))
        cmd = [
            'sbatch', '--parsable', f'--partition={self.partition}',
            f'--job-name={self.job_name(task)}', f'--nodes={self.nodes}',
            f'--ntasks={self.gpus}', f'--ntasks-per-node={self.per_node}',
            f'--gres=gpu:{self.per_node}',
            f'--cpus-per-task={self.cpus_per_task}',
            f'--output={osp.join(task.work_dir, "slurm-%j.log")}',
            '--open-mode=append', f'--chdir={os.getcwd()}', '--requeue',
            f'--signal=USR1@{SIGNAL_BEFORE_S}'
        ]
        after = self._lines[self._next_line] if self._lines else None
        if after:
            cmd.append(f'--dependency=afterany:{after}')
        proc = run_slurm(cmd + self.sbatch_args + [path])
        if proc.returncode != 0 and after and 'ependency' in proc.stderr:
            # The job it would follow has left the queue meanwhile.
            cmd.remove(f'--dependency=afterany:{after}')
            proc = run_slurm(cmd + self.sbatch_args + [path])
        if proc.returncode != 0:
            why = proc.stderr.strip() or proc.stdout
            raise SubmitError(
                f'sbatch refused {task.name}: {why}' + refusal_hint(
                    why, self.cpus_per_task, self.partition))
        job_id = proc.stdout.strip().split(';')[0]
        if self._lines:
            self._lines[self._next_line] = job_id
            self._next_line = (self._next_line + 1) % len(self._lines)
        record = dict(
            launcher=self.name, token=token, job_id=job_id,
            name=self.job_name(task), partition=self.partition,
            log=osp.join(task.work_dir, f'slurm-{job_id}.log'),
            submitted=time.time())
        return Job(task, record)

    def stop(self, jobs: Sequence[Job]) -> None:
        """Leave the jobs be: they run on without this process, and the
        next comparison on the same root waits for them."""
