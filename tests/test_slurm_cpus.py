"""The CPUs per task of ``tools/compare.py --launcher slurm`` under the real
single-node Slurm of tests/conftest.py (8 CPUs, 8 fake GPUs): the default
fits the partition, and a refusal says how to change it."""
import sys

from sema_mm.comparison.launchers import SlurmLauncher
from sema_mm.comparison.slurm_cpus import partition_cpus
from tests.test_compare_launchers import COMPARE, control_config
from tests.test_slurm import queue, slurm_run


def test_default_cpus_per_task_fit_the_partition(slurm_cluster,
                                                 monkeypatch):
    for key, value in slurm_cluster.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv('CPUS_PER_TASK', raising=False)
    assert partition_cpus('test') == 8
    # OpenMMLab's 5 where the node has them; 8 CPUs / 2 tasks: 4.
    assert SlurmLauncher('test', gpus_per_run=1).cpus_per_task == 5
    assert SlurmLauncher('test', gpus_per_run=2,
                         gpus_per_node=2).cpus_per_task == 4
    assert SlurmLauncher('test', gpus_per_run=8).cpus_per_task == 1
    monkeypatch.setenv('CPUS_PER_TASK', '3')
    assert SlurmLauncher('test', gpus_per_run=2).cpus_per_task == 3


def test_refused_cpus_per_task_get_a_hint(slurm_cluster, tmp_path):
    config = control_config(tmp_path, tmp_path)
    proc = slurm_run([
        sys.executable, COMPARE, f'toy={config}', '--variants', 'sema',
        '--seeds', '0', '--work-root', str(tmp_path / 'work'),
        '--launcher', 'slurm', '--partition', 'test', '--cpus-per-task', '9'
    ], slurm_cluster, tmp_path, timeout=120, check=False)
    assert proc.returncode == 1, proc.stdout
    assert 'sbatch refused toy SEMA seed 0' in proc.stdout
    assert 'The jobs ask 9 CPUs per task' in proc.stdout
    assert '(its nodes have 8 CPUs)' in proc.stdout
    assert 'lower them with --cpus-per-task' in proc.stdout
    assert not queue(slurm_cluster)
