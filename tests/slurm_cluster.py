"""A real single-node Slurm for the tests, started and stopped by PID.

:class:`LocalSlurm` writes a ``slurm.conf`` and ``gres.conf`` into a
temporary folder and starts ``munged`` (as the ``munge`` user),
``slurmctld`` and ``slurmd`` (as root) in the foreground as child processes
of the test process; :meth:`LocalSlurm.stop` cancels what is still queued
and stops the three by their PIDs. Clients find the cluster through
``SLURM_CONF`` (:attr:`LocalSlurm.env`). The set-up is the one
``docs/slurm_local.md`` describes:

* no cgroups: ``ProctrackType=proctrack/linuxproc``, ``TaskPlugin=task/
  none``; no accounting; ``MailProg=/bin/true``;
* one node (this machine's host name, at 127.0.0.1) declaring ``CPUs`` more
  than the machine has (``SlurmdParameters=config_overrides``), so that 8
  tasks fit on 2 cores, and 8 fake ``gpu`` generic resources whose
  ``File=`` entries are links to ``/dev/null`` (Slurm 22.05 drops GPUs
  declared by count only), so ``--gres=gpu:N`` is accepted without a GPU;
* ``EnforcePartLimits=ALL``: a request the node can never satisfy fails at
  submission instead of pending forever.

Debian's ``slurm-wlm`` and ``munge`` packages provide the daemons
(``tools/setup_slurm.sh`` installs them).
"""
import os
import os.path as osp
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Dict, List, Optional

#: Executables the cluster needs (daemons and client commands).
TOOLS = ('munged', 'slurmctld', 'slurmd', 'sbatch', 'srun', 'squeue',
         'scontrol', 'scancel', 'sinfo')
SBIN = ('/usr/sbin', '/sbin')


def search_path() -> str:
    """``PATH`` with the system ``sbin`` folders (where the daemons are)."""
    path = os.environ.get('PATH', '')
    extra = [d for d in SBIN if d not in path.split(os.pathsep)]
    return os.pathsep.join([path] + extra)


def missing_tools() -> List[str]:
    """The executables of :data:`TOOLS` that are not installed."""
    path = search_path()
    return [t for t in TOOLS if shutil.which(t, path=path) is None]


def unavailable_reason() -> Optional[str]:
    """Why a local cluster cannot be started here, or None."""
    missing = missing_tools()
    if missing:
        return (f'slurm is not installed (missing {", ".join(missing)}): '
                'run tools/setup_slurm.sh as root')
    if os.geteuid() != 0:
        return 'the local slurm cluster runs slurmd as root; run as root'
    try:
        pwd.getpwnam('munge')
    except KeyError:
        return 'no `munge` user (install the munge package)'
    host = socket.gethostname().split('.')[0]
    try:
        socket.gethostbyname(host)
    except OSError:
        return (f'the host name {host!r} does not resolve (the node keeps '
                'it: jobs rendezvous there); add it to /etc/hosts')
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _parent_death_signal():
    """A function for ``preexec_fn``: the child gets SIGTERM when the test
    process dies, so that a killed test run leaves no daemon behind (None
    where ``prctl`` is not available)."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return preexec


class LocalSlurm:
    """A one-node Slurm cluster under a temporary folder.

    Args:
        cpus (int): CPUs the node declares (more than the machine has is
            fine). Defaults to 8.
        gpus (int): Fake GPUs (``gres/gpu``) the node declares. Defaults
            to 8.
        partition (str): Name of the one partition. Defaults to ``'test'``.
        root (str, optional): Folder for the configuration, state and logs;
            a new temporary folder by default (removed by :meth:`stop`).
    """

    def __init__(self, cpus: int = 8, gpus: int = 8,
                 partition: str = 'test',
                 root: Optional[str] = None) -> None:
        self.cpus = cpus
        self.gpus = gpus
        self.partition = partition
        self._own_root = root is None
        # Not under pytest's 0700 base folder: munged runs as `munge`.
        self.root = root or tempfile.mkdtemp(prefix='sema-slurm-')
        os.makedirs(self.root, exist_ok=True)
        os.chmod(self.root, 0o755)
        self.node = socket.gethostname().split('.')[0]
        self.conf = osp.join(self.root, 'slurm.conf')
        self.munge_socket = osp.join(self.root, 'munge', 'munge.socket')
        self.procs: Dict[str, subprocess.Popen] = {}

    @property
    def env(self) -> Dict[str, str]:
        """What a client's environment needs: ``SLURM_CONF``."""
        return dict(SLURM_CONF=self.conf)

    def _write_munge(self) -> List[str]:
        """The munge key and folder; the ``munged`` command line."""
        folder = osp.dirname(self.munge_socket)
        os.makedirs(folder, exist_ok=True)
        key = osp.join(folder, 'munge.key')
        with open(key, 'wb') as f:
            f.write(os.urandom(1024))
        user = pwd.getpwnam('munge')
        for path, mode in ((folder, 0o755), (key, 0o400)):
            os.chown(path, user.pw_uid, user.pw_gid)
            os.chmod(path, mode)
        return [
            'munged', '--foreground', f'--key-file={key}',
            f'--socket={self.munge_socket}',
            f'--pid-file={osp.join(folder, "munged.pid")}',
            f'--log-file={osp.join(folder, "munged.log")}',
            f'--seed-file={osp.join(folder, "munged.seed")}'
        ]

    def config_text(self) -> str:
        """The ``slurm.conf`` of the cluster."""
        r = self.root
        return '\n'.join([
            'ClusterName=sema-test',
            f'SlurmctldHost={self.node}(127.0.0.1)',
            f'SlurmctldPort={_free_port()}',
            f'SlurmdPort={_free_port()}',
            'SlurmUser=root',
            'SlurmdUser=root',
            'AuthType=auth/munge',
            'CredType=cred/munge',
            f'AuthInfo=socket={self.munge_socket}',
            f'StateSaveLocation={r}/state',
            f'SlurmdSpoolDir={r}/spool',
            f'SlurmctldPidFile={r}/slurmctld.pid',
            f'SlurmdPidFile={r}/slurmd.pid',
            f'SlurmctldLogFile={r}/slurmctld.log',
            f'SlurmdLogFile={r}/slurmd.log',
            'ProctrackType=proctrack/linuxproc',
            'TaskPlugin=task/none',
            'JobAcctGatherType=jobacct_gather/none',
            'AccountingStorageType=accounting_storage/none',
            'MailProg=/bin/true',
            'SchedulerType=sched/builtin',
            'SelectType=select/cons_tres',
            'SelectTypeParameters=CR_Core',
            'SlurmdParameters=config_overrides',
            'EnforcePartLimits=ALL',
            'ReturnToService=2',
            'GresTypes=gpu',
            'KillWait=5',
            f'NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} '
            f'Gres=gpu:{self.gpus} State=UNKNOWN',
            f'PartitionName={self.partition} Nodes={self.node} Default=YES '
            'MaxTime=INFINITE State=UP',
            '',
        ])

    def _write_config(self) -> None:
        for folder in ('state', 'spool', 'gpus'):
            os.makedirs(osp.join(self.root, folder), exist_ok=True)
        # Slurm 22.05 drops count-only GPUs: one File= per fake GPU.
        for i in range(self.gpus):
            link = osp.join(self.root, 'gpus', f'gpu{i}')
            if not osp.lexists(link):
                os.symlink('/dev/null', link)
        with open(self.conf, 'w') as f:
            f.write(self.config_text())
        with open(osp.join(self.root, 'gres.conf'), 'w') as f:
            f.write(f'NodeName={self.node} Name=gpu '
                    f'File={self.root}/gpus/gpu[0-{self.gpus - 1}]\n')

    def _start(self, name: str, cmd: List[str], **kwargs) -> None:
        log = open(osp.join(self.root, f'{name}.out'), 'w')
        env = dict(os.environ, PATH=search_path(), **self.env)
        self.procs[name] = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
            stdin=subprocess.DEVNULL, preexec_fn=_parent_death_signal(),
            start_new_session=True, **kwargs)
        log.close()

    def start(self, timeout: float = 60) -> 'LocalSlurm':
        """Start munged, slurmctld and slurmd; wait until the node is idle.

        Raises:
            RuntimeError: When a daemon exits or the node does not become
                idle within ``timeout`` seconds (the message holds the
                daemons' logs).
        """
        try:
            munged = self._write_munge()
            self._write_config()
            user = pwd.getpwnam('munge')
            self._start('munged', munged, user=user.pw_uid,
                        group=user.pw_gid)
            self._wait_for(lambda: osp.exists(self.munge_socket), timeout,
                           'munged did not create its socket')
            self._start('slurmctld',
                        ['slurmctld', '-D', '-i', '-f', self.conf])
            self._start('slurmd',
                        ['slurmd', '-D', '-f', self.conf, '-N', self.node])
            self._wait_for(self._node_idle, timeout,
                           f'node {self.node} did not become idle')
        except BaseException:
            self.stop(keep_root=True)
            raise
        return self

    def _node_idle(self) -> bool:
        out = self.client(['sinfo', '-h', '-N', '-o', '%T'], check=False)
        return out.strip() == 'idle'

    def _wait_for(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(
                    f'{what}; exited: {dead or "none"}\n{self.logs()}')
            time.sleep(0.2)

    def client(self, cmd: List[str], check: bool = True) -> str:
        """Run a client command (``sinfo``, ``squeue``...) against the
        cluster; return its standard output ('' when it fails and
        ``check`` is False)."""
        try:
            proc = subprocess.run(
                cmd, env=dict(os.environ, **self.env), capture_output=True,
                text=True, timeout=20)
        except subprocess.TimeoutExpired:
            if check:
                raise
            return ''
        if check and proc.returncode != 0:
            raise RuntimeError(f'{cmd} failed: {proc.stderr}')
        return proc.stdout if proc.returncode == 0 else ''

    def logs(self) -> str:
        """The tail of every daemon's log, for error messages."""
        parts = []
        for name in ('munged.out', 'slurmctld.out', 'slurmd.out',
                     'slurmctld.log', 'slurmd.log', 'munge/munged.log'):
            path = osp.join(self.root, name)
            if osp.isfile(path):
                with open(path, errors='replace') as f:
                    parts.append(f'--- {name}\n{f.read()[-3000:]}')
        return '\n'.join(parts)

    def cancel_all(self, timeout: float = 60) -> None:
        """Cancel every job of the cluster and wait until the queue is
        empty (their processes belong to slurmd's step daemons)."""
        if 'slurmctld' not in self.procs or \
                self.procs['slurmctld'].poll() is not None:
            return
        self.client(['scancel', f'--partition={self.partition}'],
                    check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and \
                self.procs['slurmctld'].poll() is None:
            if not self.client(['squeue', '-h'], check=False).strip() \
                    and not self.step_daemons():
                return
            time.sleep(0.5)

    def step_daemons(self) -> List[str]:
        """PIDs of slurmd's children (the jobs' ``slurmstepd``)."""
        proc = self.procs.get('slurmd')
        if proc is None or proc.poll() is not None:
            return []
        try:
            with open(f'/proc/{proc.pid}/task/{proc.pid}/children') as f:
                return f.read().split()
        except OSError:
            return []

    def stop(self, keep_root: bool = False) -> None:
        """Cancel the jobs, then stop slurmd, slurmctld and munged by PID
        (SIGTERM, then SIGKILL after 15 s); remove the temporary folder
        unless ``keep_root``."""
        try:
            self.cancel_all()
        finally:
            for name in ('slurmd', 'slurmctld', 'munged'):
                proc = self.procs.pop(name, None)
                if proc is None or proc.poll() is not None:
                    continue
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if self._own_root and not keep_root:
                shutil.rmtree(self.root, ignore_errors=True)


def main() -> None:
    """``python -m tests.slurm_cluster [--root DIR] [--partition NAME]``:
    start the cluster, print how to reach it, stop it on Ctrl-C."""
    import argparse
    parser = argparse.ArgumentParser(
        description='Run a one-node Slurm until Ctrl-C (as root).')
    parser.add_argument('--root', help='folder for its configuration, '
                        'state and logs (default: a new temporary one)')
    parser.add_argument('--partition', default='debug')
    parser.add_argument('--cpus', type=int, default=8)
    parser.add_argument('--gpus', type=int, default=8)
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason is not None:
        raise SystemExit(reason)
    cluster = LocalSlurm(args.cpus, args.gpus, args.partition,
                         args.root).start()
    print(f'slurm is up (partition {args.partition}, {args.cpus} CPUs, '
          f'{args.gpus} fake GPUs); in another shell:\n'
          f'  export SLURM_CONF={cluster.conf}\n'
          f'logs in {cluster.root}; Ctrl-C stops it.', flush=True)
    try:
        stop = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # the daemons run
        signal.sigwait(stop)
    finally:
        cluster.stop(keep_root=args.root is not None)


if __name__ == '__main__':
    main()
