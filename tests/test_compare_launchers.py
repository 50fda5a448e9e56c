"""``tools/compare.py`` running runs in parallel, surviving interruptions,
and showing one status line per run.

Every test runs the real ``tools/compare.py`` in a subprocess on the toy
config of :mod:`tests.toy` (2 epochs, real mmengine Runners), with
:mod:`tests.run_control` to hold a run in the middle of training or make it
fail once. ``--launcher local --parallel 2`` trains two CPU runs at a time.
The slurm launcher is tested in tests/test_slurm.py.
"""
import json
import os
import os.path as osp
import pty
import re
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path
from typing import List

import pytest
from mmengine.config import Config

from sema_mm.comparison.job_wrapper import DirLock
from sema_mm.comparison.launchers import LocalLauncher
from sema_mm.comparison.progress import ProgressBoard
from sema_mm.resume import PREEMPTED_EXIT_CODE
from tests.test_tools import run_env
from tests.toy import toy_config

REPO = Path(__file__).resolve().parents[1]
COMPARE = str(REPO / 'tools' / 'compare.py')


def control_config(directory: Path, control: Path) -> str:
    """The toy SEMA config (2 epochs, 32 images, momentum 0.2) with
    :class:`tests.run_control.RunControlHook` watching ``control``."""
    cfg = toy_config('unused', log_level='WARNING')
    cfg.pop('work_dir')
    cfg['train_cfg'] = dict(by_epoch=True, max_epochs=2, val_interval=1)
    cfg['custom_hooks'] = [
        dict(type='SwitchEMAHook', momentum=0.2),
        dict(type='RunControlHook', folder=str(control)),
    ]
    cfg['custom_imports'] = dict(
        imports=['tests.toy', 'tests.run_control', 'sema_mm'],
        allow_failed_imports=False)
    path = osp.join(str(directory), 'toy_control.py')
    Config(cfg).dump(path)
    return path


def compare_cmd(config: str, root: Path, *args: str) -> List[str]:
    """``tools/compare.py`` on ``config`` (named ``toy``) under ``root``."""
    return [sys.executable, COMPARE, f'toy={config}', '--work-root',
            str(root), '--poll', '0.2', *args]


def run_compare(cmd: List[str], cwd: Path,
                timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=run_env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout)


def attempts(root: Path) -> List[dict]:
    """Every run's last ``attempt.json`` under ``root``."""
    return [json.loads(p.read_text()) for p in root.glob('*/*/*/'
                                                          'attempt.json')]


def max_overlap(root: Path) -> int:
    """The most runs that were training at the same moment, from the start
    and end times the jobs recorded."""
    events = []
    for a in attempts(root):
        events += [(a['started'], 1), (a['ended'], -1)]
    most = now = 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):
        now += change
        most = max(most, now)
    return most


def train_rows_of_epoch(run_dir: Path, epoch: int) -> int:
    """Training lines logged for ``epoch`` over all starts of a run."""
    count = 0
    for path in run_dir.glob('*/vis_data/scalars.json'):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            count += 'iter' in row and row.get('epoch') == epoch
    return count


def wait_for(condition, what: str, timeout: float = 180,
             procs=()) -> None:
    """Wait until ``condition()`` holds; fail with ``what`` after
    ``timeout`` seconds or when one of ``procs`` has exited."""
    deadline = time.monotonic() + timeout
    while not condition():
        ended = [p for p in procs if p.poll() is not None]
        assert not ended and time.monotonic() < deadline, \
            f'gave up waiting for {what}'
        time.sleep(0.2)


# --------------------------------------------------------------- units
def test_local_slots_own_their_gpus(monkeypatch):
    """With G visible GPUs, G / N runs at a time, each with its own N."""
    from sema_mm.comparison import launchers
    monkeypatch.setattr(launchers, 'visible_gpus',
                        lambda: [str(i) for i in range(8)])
    assert LocalLauncher(2).slots == ['0,1', '2,3', '4,5', '6,7']
    assert LocalLauncher(3).slots == ['0,1,2', '3,4,5']
    assert LocalLauncher(1, parallel=3).slots == ['0', '1', '2']
    with pytest.raises(ValueError, match='only 8 GPU'):
        LocalLauncher(16)
    monkeypatch.setattr(launchers, 'visible_gpus', lambda: [])
    cpu = LocalLauncher(1, parallel=2)
    assert cpu.slots == ['', ''] and cpu.threads >= 1


def test_local_runs_get_their_own_gpus_and_ports(monkeypatch, tmp_path):
    """Four runs of 2 GPUs on a (pretended) 8-GPU machine start at once,
    each with its own ``CUDA_VISIBLE_DEVICES`` and rendezvous port."""
    from sema_mm.comparison import launchers
    monkeypatch.setattr(launchers, 'visible_gpus',
                        lambda: [str(i) for i in range(8)])
    show_env = [sys.executable, '-c', 'import json, os; print(json.dumps('
                '{k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", '
                '"PORT", "MASTER_PORT")}))']
    monkeypatch.setattr(launchers, 'train_command', lambda *a: show_env)
    launcher = LocalLauncher(2)
    tasks = [launchers.Task(f'toy/sema/seed{i}', f'seed {i}',
                            str(tmp_path / f'seed{i}'), 'unused.py', 'x')
             for i in range(4)]
    jobs = []
    for task in tasks:
        os.makedirs(task.work_dir)
        jobs.append(launcher.submit(task, token=task.key))
    assert launcher.capacity == 4 and len(launcher._busy) == 4
    for job in jobs:
        assert job.proc.wait(timeout=60) == 0
        launcher.release(job)
    seen = [json.loads(line) for job in jobs
            for line in Path(job.log).read_text().splitlines()
            if line.startswith('{')]
    assert [e['CUDA_VISIBLE_DEVICES'] for e in seen] == \
        ['0,1', '2,3', '4,5', '6,7']
    assert len({e['PORT'] for e in seen}) == 4
    assert all(e['PORT'] == e['MASTER_PORT'] for e in seen)
    assert not launcher._busy


def test_board_lines_and_plain_output():
    """A line per state change when the output is not a terminal; the
    lines themselves: epoch in progress, metric, ETA, log of a failure."""
    out = StringIO()
    board = ProgressBoard({'a': 'toy SEMA seed 0', 'b': 'toy EMA seed 0'},
                          stream=out, mode='auto')
    assert board.mode == 'plain'
    board.update('a', state='running', total=30, unit='epoch', done=0)
    for epoch in range(1, 4):
        board.update('a', done=epoch,
                     values={'accuracy/top1': 80.0 + epoch, 'step': epoch})
    run = board.runs['a']
    assert run.step_text() == 'epoch 4/30'
    assert run.eta() is not None and 'ETA' in run.line()
    assert 'accuracy/top1 83.00' in run.line()
    board.update('b', state='failed', detail='exit status 1; log: x.log')
    board.update('a', state='done', wall_s=65)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # one per change of state, none per epoch
    assert lines[1].startswith('[1/2] toy EMA seed 0  failed')
    assert lines[1].endswith('log: x.log')
    assert 'done' in lines[2] and '1:05' in lines[2]
    assert board.head() == \
        'compare: 2 runs: 1 done, 0 running, 0 queued, 1 failed'


# ------------------------------------------------------- local launcher
def test_local_parallel_runs_failure_and_resubmission(tmp_path):
    """``--launcher local --parallel 2``: three runs, two at a time, each a
    process of its own; a plain line per change of state; a failed run is
    reported with its log, the others' table is written, and the next call
    trains only that run, resuming after its first epoch."""
    control = tmp_path / 'control'
    control.mkdir()
    (control / 'sema_seed0.fail').write_text('')
    config = control_config(tmp_path, control)
    root = tmp_path / 'work'
    cmd = compare_cmd(config, root, '--variants', 'baseline', 'ema', 'sema',
                      '--seeds', '0', '--launcher', 'local', '--parallel',
                      '2')
    proc = run_compare(cmd, tmp_path)
    out = proc.stdout
    assert proc.returncode == 1, out[-6000:]
    assert '2 CPU run(s) at a time' in out
    log = root / 'toy' / 'sema' / 'seed0' / 'train.log'
    assert f'toy SEMA seed 0 failed: exit status 1; log: {log}' in out
    assert 'planned failure' in log.read_text()
    assert '1 run(s) failed' in out
    for name in ('baseline', 'EMA', 'SEMA'):
        # 'running', then 'done' or 'failed': no line per epoch.
        assert out.count(f'] toy {name} seed 0  ') == 2, out
    assert max_overlap(root) == 2
    report = (root / 'results.md').read_text()
    assert '| baseline | 1 |' in report and '| EMA | 1 |' in report
    assert 'Not finished (their curves so far are included): ' \
        'toy SEMA seed 0' in report

    proc = run_compare(cmd, tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert proc.stdout.count('finished before') == 2
    assert 'toy SEMA seed 0: its last job exit status 1' in proc.stdout
    assert train_rows_of_epoch(root / 'toy' / 'sema' / 'seed0', 1) == 8
    report = (root / 'results.md').read_text()
    assert '| SEMA | 1 |' in report and 'Not finished' not in report


#: Runs the command that follows with SIGINT at its default action and
#: unblocked, as a terminal's foreground job gets it (the command replaces
#: this process, keeping its pid). A test run started in the background by a
#: non-interactive shell (``make test &``, ``nohup``) has SIGINT ignored, its
#: children inherit that, and a Python program started with SIGINT ignored
#: keeps ignoring it: Ctrl-C would never reach the comparison.
DEFAULT_SIGINT = [
    sys.executable, '-c',
    'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); '
    'signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); '
    'os.execv(sys.argv[1], sys.argv[1:])'
]


class HeldComparison:
    """``--launcher local --parallel 2`` on SEMA seeds 0 and 1, started in
    the background (with SIGINT as a terminal gives it, see
    :data:`DEFAULT_SIGINT`) and watched until seed 0 has finished and seed
    1 waits at its gate, before its second epoch (after its first
    checkpoint). ``release()`` opens the gate; ``close()`` also ends the
    comparison if it still runs (after a failed test)."""

    def __init__(self, tmp_path: Path) -> None:
        self.control = tmp_path / 'control'
        self.control.mkdir()
        self.hold = self.control / 'sema_seed1.hold'
        self.hold.write_text('')
        config = control_config(tmp_path, self.control)
        self.root = tmp_path / 'work'
        self.cmd = compare_cmd(config, self.root, '--variants', 'sema',
                               '--seeds', '0', '1', '--launcher', 'local',
                               '--parallel', '2')
        self.seed0, self.seed1 = (self.root / 'toy' / 'sema' / f'seed{s}'
                                  for s in (0, 1))
        self.out = tmp_path / 'first.out'
        with open(self.out, 'w') as out:
            self.proc = subprocess.Popen(
                DEFAULT_SIGINT + self.cmd, cwd=tmp_path, env=run_env(),
                stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: (self.control / 'sema_seed1.waiting').exists()
                     and (self.seed0 / 'finished.json').exists(),
                     'seed 0 to finish and seed 1 to reach its gate',
                     procs=[self.proc])
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise

    def release(self) -> None:
        if self.hold.exists():
            self.hold.unlink()

    def close(self) -> None:
        """Open the gate (the held run then ends by itself) and kill the
        comparison if it still runs."""
        self.release()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_killed_compare_loses_nothing_and_never_trains_twice(tmp_path):
    """SIGKILL the comparison while one run is finished and another is in
    the middle of training: the finished run is kept, the running one goes
    on, and the next comparison waits for that job instead of starting a
    second one in the same folder. Meanwhile a third comparison on the same
    root is refused, naming the one at work."""
    held = HeldComparison(tmp_path)
    held.proc.kill()
    held.proc.wait()
    root, seed1 = held.root, held.seed1
    job = json.loads((seed1 / 'job.json').read_text())
    assert DirLock(str(seed1 / 'run.lock')).is_held()  # still training

    second_out = tmp_path / 'second.out'
    with open(second_out, 'w') as out:
        second = subprocess.Popen(held.cmd, cwd=tmp_path, env=run_env(),
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: 'started earlier' in second_out.read_text(),
                 'the second comparison to adopt the job', procs=[second])
        third = run_compare(held.cmd, tmp_path)
        assert third.returncode == 2
        assert f'another comparison is running on {root}: pid ' \
            f'{second.pid}' in third.stdout
    finally:
        held.release()
        second.wait(timeout=300)
    text = second_out.read_text()
    assert second.returncode == 0, text[-6000:]
    assert text.count('finished before') == 1
    assert re.search(r'toy SEMA seed 1 +done +epoch 2/2', text)
    # One job trained seed 1, from start to end.
    assert json.loads((seed1 / 'attempt.json').read_text())['token'] == \
        job['token']
    assert (seed1 / 'train.log').read_text().count('[job] 20') == 1
    assert '| SEMA | 2 |' in (root / 'results.md').read_text()


def test_interrupted_compare_stops_its_runs(tmp_path):
    """Ctrl-C (SIGINT) while a local run trains: the run's processes are
    stopped (SIGTERM: the run saves a preemption checkpoint and exits with
    PREEMPTED_EXIT_CODE), its folder is free for the next call, and the
    finished run is kept."""
    held = HeldComparison(tmp_path)
    try:
        held.proc.send_signal(signal.SIGINT)
        held.proc.wait(timeout=120)
    finally:
        held.close()
    seed0, seed1 = held.seed0, held.seed1
    assert held.proc.returncode != 0
    assert 'interrupted: stopped 1 run(s)' in held.out.read_text()
    assert (seed0 / 'finished.json').exists()
    assert not DirLock(str(seed1 / 'run.lock')).is_held()
    attempt = json.loads((seed1 / 'attempt.json').read_text())
    assert attempt['rc'] == PREEMPTED_EXIT_CODE
    assert not (seed1 / 'finished.json').exists()
    assert (seed1 / 'epoch_1.pth').exists()  # where the next call resumes


# ------------------------------------------------------------ terminal
def screen(raw: str) -> List[str]:
    """What a terminal shows after ``raw``, for the control sequences the
    board writes (cursor up, carriage return, erase line, erase below)."""
    lines, row, col = [''], 0, 0
    for token in re.findall(r'\x1b\[\d*[A-Za-z]|\r|\n|[^\x1b\r\n]+', raw):
        if token == '\n':
            row, col = row + 1, 0
            lines += [''] * (row + 1 - len(lines))
        elif token == '\r':
            col = 0
        elif token.startswith('\x1b['):
            n, code = token[2:-1], token[-1]
            if code == 'A':
                row = max(0, row - int(n or 1))
            elif code == 'K':
                lines[row] = ''
            elif code == 'J':
                lines[row] = lines[row][:col]
                del lines[row + 1:]
        else:
            line = lines[row]
            lines[row] = line[:col] + token + line[col + len(token):]
            col += len(token)
    return [line for line in lines if line.strip()]


def test_status_lines_update_in_place_on_a_terminal(tmp_path):
    """On a terminal (a pseudo-terminal here) the default, sequential
    comparison redraws one line per run instead of printing a line per
    epoch; the final screen shows every run done."""
    config = control_config(tmp_path, tmp_path)
    root = tmp_path / 'work'
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        compare_cmd(config, root, '--variants', 'baseline', 'sema',
                    '--seeds', '0', '--threads', '1'),
        cwd=tmp_path, env=run_env(COLUMNS='120', LINES='40'), stdout=slave,
        stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the other side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    raw = b''.join(chunks).decode(errors='replace')
    assert '\x1b[' in raw and 'running' in raw
    shown = screen(raw)
    head = next(i for i, line in enumerate(shown)
                if line.startswith('compare: 2 runs: 2 done'))
    assert re.match(r'  toy baseline seed 0 +done +epoch 2/2 +toy/accuracy',
                    shown[head + 1])
    assert re.match(r'  toy SEMA seed 0 +done +epoch 2/2 +toy/accuracy',
                    shown[head + 2])
    assert len(shown) < 12, shown  # no line per epoch
