"""Files and processes on a shared cluster: the modes of the files a run
writes, ``--resume`` over a cut checkpoint, and training processes that end
with a killed torchrun.

Real Runners on the toy task of :mod:`tests.toy`; the launcher test runs the
real ``tools/dist_train.sh`` (torchrun, 2 gloo processes) held at a gate by
:class:`tests.run_control.RunControlHook`. The Slurm batch form (requeue
and resume) is tested in tests/test_slurm.py.
"""
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest
from mmengine.config import Config
from mmengine.fileio import dump

from sema_mm.cli.parent_death import LAUNCHER_PID
from sema_mm.cli.resume import resolve_auto_resume
from tests.test_tools import TOOLS, free_port, run_env, write_config
from tests.utils import make_runner

linux_only = pytest.mark.skipif(not sys.platform.startswith('linux'),
                                reason='prctl(PR_SET_PDEATHSIG) is Linux only')


# ------------------------------------------------------------ file modes
@pytest.mark.parametrize('umask, mode', [(0o022, 0o644), (0o027, 0o640)],
                         ids=['umask022', 'umask027'])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    """A Runner's checkpoint, ``last_checkpoint`` and a file written with
    ``mmengine.dump`` (as ``tools/test.py --out`` writes predictions) get
    ``0o666`` less the umask, as with plain mmengine, not ``0o600``; no
    temporary file is left."""
    old = os.umask(umask)
    try:
        runner = make_runner(tmp_path, train_cfg=dict(
            by_epoch=True, max_epochs=1, val_interval=1))
        runner.train()
        dump([dict(pred=1)], str(tmp_path / 'preds.pkl'))
    finally:
        os.umask(old)
    for name in ('epoch_1.pth', 'last_checkpoint', 'preds.pkl'):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert not list(tmp_path.glob('.*.tmp'))


# --------------------------------------------------------- resume check
def test_resume_without_a_readable_checkpoint_is_a_clear_error(tmp_path):
    """Every checkpoint of the work dir is empty or cut: ``--resume auto``
    names each one with the reason and stops before any training (the cut
    checkpoint of a real run, with a readable one to fall back to:
    tests/test_tools.py)."""
    (tmp_path / 'epoch_1.pth').write_bytes(b'')
    (tmp_path / 'epoch_2.pth').write_bytes(b'PK\x03\x04' + bytes(100))
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))
    cfg = Config(dict(resume=True, load_from=None, work_dir=str(tmp_path)))
    with pytest.raises(RuntimeError) as error:
        resolve_auto_resume(cfg)
    message = str(error.value)
    assert f'no readable checkpoint in {tmp_path}' in message
    assert f'{tmp_path / "epoch_1.pth"}: it is empty' in message
    assert f'{tmp_path / "epoch_2.pth"}: it is cut short' in message
    assert cfg.load_from is None


# ------------------------------------------------------ launcher's death
def children(pid: int) -> List[int]:
    """The pids of the processes whose parent is ``pid``."""
    found = []
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / 'stat').read_text().rsplit(')', 1)[1]
            except (OSError, IndexError):
                continue
            if int(fields.split()[1]) == pid:
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1]
    except (OSError, IndexError):
        return False
    return state.split()[0] not in ('Z', 'X')


def wait_until(condition, what: str, timeout: float = 180) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f'gave up waiting for {what}'
        time.sleep(0.1)


@linux_only
def test_workers_end_with_a_killed_torchrun(tmp_path):
    """SIGKILL of the torchrun that ``tools/dist_train.sh`` became (same
    pid) while its two processes train: both end."""
    control = tmp_path / 'control'
    control.mkdir()
    (control / 'dist_held.hold').write_text('')
    config = write_config(
        tmp_path,
        custom_hooks=[dict(type='SwitchEMAHook', momentum=0.2),
                      dict(type='RunControlHook', folder=str(control))],
        custom_imports=dict(imports=['tests.toy', 'tests.run_control'],
                            allow_failed_imports=False))
    with open(tmp_path / 'dist.log', 'w') as log:
        launcher = subprocess.Popen(
            ['bash', str(TOOLS / 'dist_train.sh'), str(config), '2',
             '--work-dir', str(tmp_path / 'dist' / 'held')],
            cwd=tmp_path, env=run_env(PORT=str(free_port())), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
    workers: List[int] = []
    try:
        # Both ranks trained epoch 1 together: both passed their set-up.
        wait_until(lambda: (control / 'dist_held.waiting').exists() or
                   launcher.poll() is not None, 'the gate before epoch 2')
        assert launcher.poll() is None, (tmp_path / 'dist.log').read_text()
        workers = children(launcher.pid)
        assert len(workers) == 2, workers
        launcher.kill()
        launcher.wait()
        wait_until(lambda: not any(running(w) for w in workers),
                   'the workers to end', timeout=60)
    finally:
        for pid in workers:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()


@linux_only
def test_worker_of_an_ended_launcher_exits(tmp_path):
    """A process started by torchrun whose launcher has already ended when
    it sets its parent-death signal (the recorded launcher pid is gone and
    is not its parent) exits at once, saying why."""
    gone = subprocess.Popen(['true'])
    gone.wait()
    config = write_config(tmp_path)
    proc = subprocess.run(
        [sys.executable, str(TOOLS / 'train.py'), str(config), '--launcher',
         'pytorch', '--work-dir', str(tmp_path / 'w')], cwd=tmp_path,
        env=run_env(**{'TORCHELASTIC_RUN_ID': 'none', LAUNCHER_PID:
                       str(gone.pid)}), text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=120)
    assert proc.returncode == 1, proc.stdout
    assert f'the launcher of this process (pid {gone.pid}) has ended' in \
        proc.stdout
    assert not (tmp_path / 'w').exists()  # nothing was trained
