"""The slurm scripts and ``tools/compare.py --launcher slurm`` under a real
single-node Slurm (the ``slurm_cluster`` fixture of tests/conftest.py:
munged, slurmctld and slurmd started for these tests, 8 CPUs and 8 fake
GPUs). Skipped where slurm is not installed (``tools/setup_slurm.sh``),
failed instead when ``CI=true``.
"""
import json
import os.path as osp
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

import pytest

from tests.test_compare_launchers import (
    COMPARE,
    control_config,
    max_overlap,
    train_rows_of_epoch,
    wait_for,
)
from tests.test_exact_resume import assert_same_checkpoint
from tests.test_tools import (
    TOOLS,
    assert_same_tensors,
    free_port,
    metric_of,
    probe,
    run_env,
    write_config,
)


def slurm_run(cmd: List[str], cluster, cwd: Path, timeout: int = 300,
              check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """Run ``cmd`` as a client of ``cluster``."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=run_env(**cluster.env, **env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=timeout)
    if check:
        assert proc.returncode == 0, \
            f'{cmd} failed:\n{proc.stdout[-6000:]}\n{cluster.logs()}'
    return proc


def test_slurm_train_and_test_two_tasks(slurm_cluster, tmp_path):
    """``tools/slurm_train.sh`` trains the SEMA toy config with 2 tasks
    (gloo): after every switch both ranks hold bit-identical weights and
    EMA; ``tools/slurm_test.sh`` evaluates the checkpoint to the last
    validation's accuracy."""
    config = write_config(tmp_path)
    work_dir = tmp_path / 'work_dir'
    scripts = dict(GPUS='2', GPUS_PER_NODE='2', CPUS_PER_TASK='1',
                   OMP_NUM_THREADS='1')
    out = slurm_run(['bash', str(TOOLS / 'slurm_train.sh'), 'test',
                     'sema-train', str(config), str(work_dir)],
                    slurm_cluster, tmp_path, MASTER_PORT=str(free_port()),
                    **scripts).stdout
    assert 'world size 2 on the CPU, gloo backend' in out
    assert (work_dir / 'epoch_2.pth').is_file()
    for epoch in (1, 2):
        r0, r1 = probe(work_dir, 0, epoch), probe(work_dir, 1, epoch)
        assert r0['world_size'] == r1['world_size'] == 2
        assert r0['num_switches'] == r1['num_switches'] == epoch
        assert_same_tensors(r0['model'], r1['model'])
        assert_same_tensors(r0['ema'], r1['ema'])
    scripts.update(GPUS='1', GPUS_PER_NODE='1')
    out = slurm_run(['bash', str(TOOLS / 'slurm_test.sh'), 'test',
                     'sema-test', str(config),
                     str(work_dir / 'epoch_2.pth'), '--work-dir',
                     str(tmp_path / 'test')],
                    slurm_cluster, tmp_path, MASTER_PORT=str(free_port()),
                    **scripts).stdout
    scalars = next(work_dir.glob('*/vis_data/scalars.json')).read_text()
    val = re.findall(r'"toy/accuracy": ([0-9.]+)', scalars)
    assert metric_of(out) == pytest.approx(float(val[-1]))


def test_compare_reports_a_refused_submission(slurm_cluster, tmp_path):
    """More GPUs per run than the node has: sbatch refuses at once
    (``EnforcePartLimits=ALL``, nothing is left pending) and the comparison
    says so and submits nothing else."""
    config = control_config(tmp_path, tmp_path)
    proc = slurm_run([
        sys.executable, COMPARE, f'toy={config}', '--variants', 'sema',
        '--seeds', '0', '1', '--work-root', str(tmp_path / 'work'),
        '--launcher', 'slurm', '--partition', 'test', '--gpus-per-run', '9',
        '--gpus-per-node', '9', '--cpus-per-task', '1'
    ], slurm_cluster, tmp_path, timeout=120, check=False)
    assert proc.returncode == 1, proc.stdout
    assert 'sbatch refused toy SEMA seed 0' in proc.stdout
    assert 'not submitting the 1 other run(s)' in proc.stdout
    assert not queue(slurm_cluster)


def queue(cluster) -> Dict[str, Dict[str, str]]:
    """Job id -> name, state, dependency of the jobs in the queue."""
    out = cluster.client(['squeue', '-h', '-o', '%i|%j|%T|%E'])
    jobs = {}
    for line in out.splitlines():
        job_id, name, state, dependency = line.split('|')
        jobs[job_id] = dict(name=name, state=state, dependency=dependency)
    return jobs


def follow_until(cmd: List[str], cluster, cwd: Path, *marks: str,
                 then) -> subprocess.CompletedProcess:
    """Run ``cmd`` as a client of ``cluster``, reading its output as it
    comes; call ``then()`` once, at the first line holding every one of
    ``marks`` (or when the output ends without one). A command still at
    work after 15 minutes is killed."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=run_env(**cluster.env), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(900, proc.kill)
    watchdog.start()
    lines, done = [], False
    try:
        for line in proc.stdout:
            lines.append(line)
            if not done and all(mark in line for mark in marks):
                then()
                done = True
        proc.wait(timeout=600)
    finally:
        watchdog.cancel()
        if not done:
            then()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, ''.join(lines))


def test_compare_on_slurm(slurm_cluster, tmp_path):
    """A 2-variant x 2-seed grid as slurm jobs, at most 2 at a time:
    submitted with ``--no-wait``, looked at with ``--report-only``, waited
    for by the next call (which adopts the jobs instead of submitting them
    again), one planned failure reported with its log and resubmitted by
    the call after, which resumes it and writes the table of all four."""
    control = tmp_path / 'control'
    control.mkdir()
    (control / 'sema_seed1.fail').write_text('')
    # Its failure waits at the gate until step 3 follows the job.
    hold = control / 'sema_seed1.hold'
    hold.write_text('')
    config = control_config(tmp_path, control)
    root = tmp_path / 'work'
    base = [sys.executable, COMPARE, f'toy={config}', '--variants',
            'baseline', 'sema', '--seeds', '0', '1', '--work-root',
            str(root), '--launcher', 'slurm', '--partition', 'test',
            '--cpus-per-task', '1', '--max-jobs', '2', '--poll', '0.5']

    # 1. Submit and exit: four jobs, in two dependency lines.
    out = slurm_run(base + ['--no-wait'], slurm_cluster, tmp_path).stdout
    assert '4 run(s) submitted or still running' in out
    jobs = {}
    for seed in (0, 1):
        for variant in ('baseline', 'sema'):
            record = json.loads(
                (root / 'toy' / variant / f'seed{seed}' / 'job.json'
                 ).read_text())
            assert record['name'].startswith(f'toy.{variant}.seed{seed}.')
            jobs[(variant, seed)] = record['job_id']
    first, second = jobs[('baseline', 0)], jobs[('sema', 0)]
    assert 'Requeue=1' in slurm_cluster.client(['scontrol', 'show', 'job',
                                                first])
    waiting = queue(slurm_cluster)
    for key, after in ((('baseline', 1), first), (('sema', 1), second)):
        if jobs[key] in waiting:  # not started yet: it follows its line
            assert waiting[jobs[key]]['dependency'] in (
                f'afterany:{after}', f'afterany:{after}(unfulfilled)')

    # 2. Where they are, without waiting or submitting.
    out = slurm_run(base + ['--report-only'], slurm_cluster,
                    tmp_path).stdout
    assert 'compare: 4 runs:' in out
    assert set(queue(slurm_cluster)) <= set(jobs.values())

    # 3. Wait for them: adopted, not submitted again; one fails. The failing
    # job is held at its gate until this call shows it running (it follows
    # it), so its failure comes during this call, however busy the machine.
    wait_for(lambda: (control / 'sema_seed1.waiting').exists(),
             'the failing run at its gate', timeout=600)
    out = follow_until(base, slurm_cluster, tmp_path, 'toy SEMA seed 1',
                       ' running ', then=hold.unlink)
    assert out.returncode == 1, out.stdout[-6000:]
    out = out.stdout
    failed_log = root / 'toy' / 'sema' / 'seed1' / \
        f'slurm-{jobs[("sema", 1)]}.log'
    assert f'toy SEMA seed 1 failed: exit status 1; log: {failed_log}' in \
        out.replace(str(tmp_path / 'work'), str(root))
    assert 'planned failure' in failed_log.read_text()
    for (variant, seed), job_id in jobs.items():
        run_dir = root / 'toy' / variant / f'seed{seed}'
        assert [p.name for p in run_dir.glob('slurm-*.log')] == \
            [f'slurm-{job_id}.log']
    assert max_overlap(root) <= 2  # --max-jobs 2
    assert '| baseline | 2 |' in (root / 'results.md').read_text()

    # 4. The failed run is submitted again and resumes after epoch 1.
    out = slurm_run(base, slurm_cluster, tmp_path).stdout
    assert out.count('finished before') == 3
    run_dir = root / 'toy' / 'sema' / 'seed1'
    assert len(list(run_dir.glob('slurm-*.log'))) == 2
    assert train_rows_of_epoch(run_dir, 1) == 8  # epoch 1 trained once
    table = (root / 'results.md').read_text()
    assert '| baseline | 2 |' in table and '| SEMA | 2 |' in table
    assert not queue(slurm_cluster)
    assert osp.isfile(run_dir / 'finished.json')


#: Slurm states of a job that has ended.
ENDED = ('COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT')


def job_state(cluster, job_id: str) -> str:
    """``JobState`` of ``job_id`` as ``scontrol show job`` says it."""
    out = cluster.client(['scontrol', 'show', 'job', job_id], check=False)
    found = re.search(r'JobState=(\S+)', out)
    return found.group(1) if found else ''


@pytest.fixture(scope='module')
def uninterrupted(slurm_cluster, tmp_path_factory) -> Path:
    """The work dir of the control config trained without interruption by
    ``tools/slurm_train.sh`` (one task, one thread): what the preempted and
    requeued runs below must end with, bit for bit."""
    folder = tmp_path_factory.mktemp('uninterrupted')
    work_dir = folder / 'w'
    slurm_run(['bash', str(TOOLS / 'slurm_train.sh'), 'test',
               'uninterrupted', control_config(folder, folder),
               str(work_dir)], slurm_cluster, folder, GPUS='1',
              GPUS_PER_NODE='1', CPUS_PER_TASK='1', OMP_NUM_THREADS='1',
              MASTER_PORT=str(free_port()))
    return work_dir


def start_now(cluster, job_id: str) -> None:
    """Once the requeued ``job_id`` is pending and its processes are gone,
    start it at once instead of after Slurm's delay of about 150 s."""
    wait_for(lambda: job_state(cluster, job_id) == 'PENDING' and
             not cluster.step_daemons(), 'the job to be requeued')
    # slurmd refuses to start a job whose credential is dated (in whole
    # seconds) no later than the job's kill ("already killed, do not launch
    # batch job"), hence Slurm's own delay: the kill is done (the node has
    # no step daemon left), so a start in the next second is safe.
    killed = int(time.time())
    wait_for(lambda: int(time.time()) > killed, 'the next second')
    cluster.client(['scontrol', 'update', f'JobId={job_id}',
                    'StartTime=now'])


def assert_resumed_like(work_dir: Path, log: str, reference: Path) -> None:
    """``work_dir`` was preempted after the first iteration of epoch 2
    (iteration 9), resumed there, and ended bit-identical to
    ``reference``, each iteration trained once."""
    assert (work_dir / 'iter_9.pth').is_file(), log[-6000:]
    assert re.search(r'Loads checkpoint .* from path: \S+/iter_9\.pth\n',
                     log), log[-6000:]
    for epoch in (1, 2):
        assert train_rows_of_epoch(work_dir, epoch) == \
            train_rows_of_epoch(reference, epoch)
    assert_same_checkpoint(work_dir / 'epoch_2.pth',
                           reference / 'epoch_2.pth')


def test_requeued_batch_job_resumes(slurm_cluster, uninterrupted, tmp_path):
    """``tools/slurm_batch_train.sh`` submits a requeueable batch job.
    ``scontrol requeue`` while it is held before epoch 2 sends it SIGTERM:
    the run takes it as a preemption, trains one more iteration, writes
    ``iter_9.pth`` and exits; started again (at once, with
    ``StartTime=now``), the job resumes at iteration 9 and ends
    bit-identical to the uninterrupted run."""
    control = tmp_path / 'control'
    control.mkdir()
    hold = control / 'run_w.hold'
    hold.write_text('')
    config = control_config(tmp_path, control)
    work_dir = tmp_path / 'run' / 'w'
    job_id = slurm_run(
        ['bash', str(TOOLS / 'slurm_batch_train.sh'), 'test', 'requeued',
         config, str(work_dir), '--cfg-options', 'log_level=INFO'],
        slurm_cluster, tmp_path, GPUS='1', CPUS_PER_TASK='1',
        OMP_NUM_THREADS='1', MASTER_PORT=str(free_port())).stdout.strip()
    assert job_id.isdigit(), job_id
    assert 'Requeue=1' in slurm_cluster.client(['scontrol', 'show', 'job',
                                                job_id])
    log = work_dir / f'slurm-{job_id}.log'
    waiting = control / 'run_w.waiting'
    wait_for(lambda: waiting.exists() or
             job_state(slurm_cluster, job_id) in ENDED, 'the gate')
    assert waiting.exists(), log.read_text()[-6000:]
    assert (work_dir / 'epoch_1.pth').is_file()
    slurm_cluster.client(['scontrol', 'requeue', job_id])
    start_now(slurm_cluster, job_id)
    hold.unlink()
    wait_for(lambda: job_state(slurm_cluster, job_id) in ENDED,
             'the restarted job to end', timeout=240)
    text = log.read_text()
    show = slurm_cluster.client(['scontrol', 'show', 'job', job_id])
    assert 'JobState=COMPLETED' in show and 'Restarts=1' in show, \
        f'{show}\n{text[-6000:]}\n{slurm_cluster.logs()}'
    assert text.count('--launcher=slurm --resume') == 2  # two starts
    assert 'Preempted (SIGTERM)' in text, text[-6000:]
    assert_resumed_like(work_dir, text, uninterrupted)


def test_compare_job_preempted_by_slurm_requeues_itself(
        slurm_cluster, tmp_path):
    """A comparison on slurm with two identical runs (tasks ``toy`` and
    ``twin``, the same config but for the gate's folder). ``scancel
    --signal=USR1`` reaches the training process of ``toy`` (held before
    epoch 2): it trains one more iteration, writes ``iter_9.pth``, requeues
    its own job (``scontrol requeue``) and exits with status 86; the
    requeued job resumes there. The waiting comparison reports both runs
    with the same numbers, and their final checkpoints are bit-identical."""
    control, quiet = tmp_path / 'control', tmp_path / 'quiet'
    control.mkdir()
    quiet.mkdir()
    (control / 'sema_seed0.hold').write_text('')
    toy = control_config(control, control)
    twin = control_config(quiet, quiet)
    root = tmp_path / 'work'
    proc = subprocess.Popen(
        [sys.executable, COMPARE, f'toy={toy}', f'twin={twin}',
         '--variants', 'sema', '--seeds', '0', '--work-root', str(root),
         '--launcher', 'slurm', '--partition', 'test', '--cpus-per-task',
         '1', '--poll', '0.5', '--progress', 'plain'],
        cwd=tmp_path, env=run_env(**slurm_cluster.env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run_dir = root / 'toy' / 'sema' / 'seed0'
        wait_for(lambda: (control / 'sema_seed0.waiting').exists(),
                 'the gate', timeout=300, procs=[proc])
        job_id = json.loads((run_dir / 'job.json').read_text())['job_id']
        slurm_cluster.client(['scancel', '--signal=USR1', job_id])
        start_now(slurm_cluster, job_id)
        (control / 'sema_seed0.hold').unlink()
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f'{out[-6000:]}\n{slurm_cluster.logs()}'
    log = (run_dir / f'slurm-{job_id}.log').read_text()
    assert 'Preempted (SIGUSR1)' in log, log[-6000:]
    # Requeued by the run itself: the test only signalled it.
    assert 'Restarts=1' in slurm_cluster.client(
        ['scontrol', 'show', 'job', job_id])
    twin_dir = root / 'twin' / 'sema' / 'seed0'
    assert_resumed_like(run_dir, log, twin_dir)
    results = {r['config']: r['variants'][0] for r in
               json.loads((root / 'results.json').read_text())}
    for key in ('final_values', 'final', 'best', 'curve'):  # not wall_s
        assert results['toy'][key] == results['twin'][key], results
