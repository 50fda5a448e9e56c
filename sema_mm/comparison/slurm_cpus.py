"""CPUs per task for the slurm jobs of a comparison.

OpenMMLab's ``slurm_train.sh`` asks 5 CPUs per task. A partition whose nodes
have fewer CPUs per GPU task refuses such a job, so the default here fits
the partition: ``$CPUS_PER_TASK`` if set, else 5 or, when the partition's
smallest node has fewer than 5 CPUs per task of a job, as many as it has
(``sinfo``). A refused submission gets a hint about ``--cpus-per-task``.
"""
import os
import re
import subprocess
from typing import Optional

#: OpenMMLab's ``slurm_train.sh`` default.
OPENMMLAB_CPUS_PER_TASK = 5


def partition_cpus(partition: str) -> Optional[int]:
    """CPUs of the smallest node of ``partition`` (``sinfo``), or None
    when slurm cannot tell."""
    try:
        proc = subprocess.run(
            ['sinfo', '--noheader', f'--partition={partition}',
             '--format=%c'], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    counts = [int(m) for m in re.findall(r'\d+', proc.stdout)]
    return min(counts) if proc.returncode == 0 and counts else None


def default_cpus_per_task(partition: str, tasks_per_node: int) -> int:
    """``--cpus-per-task`` when none is given (see the module docstring)."""
    env = os.environ.get('CPUS_PER_TASK')
    if env:
        return int(env)
    cpus = partition_cpus(partition)
    if cpus is None:
        return OPENMMLAB_CPUS_PER_TASK
    return max(1, min(OPENMMLAB_CPUS_PER_TASK, cpus // max(1, tasks_per_node)))


def refusal_hint(message: str, cpus_per_task: int, partition: str) -> str:
    """A hint for an ``sbatch`` refusal that may come from the CPUs asked
    per task; ``''`` for other refusals."""
    if not re.search(r'CPU|processors|node configuration', message, re.I):
        return ''
    cpus = partition_cpus(partition)
    has = f' (its nodes have {cpus} CPUs)' if cpus else ''
    return (f' The jobs ask {cpus_per_task} CPUs per task; if partition '
            f'{partition}{has} has fewer per GPU task, lower them with '
            '--cpus-per-task.')
