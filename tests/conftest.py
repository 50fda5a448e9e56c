"""Fixtures shared by the test modules."""
import pytest


@pytest.fixture(scope='session')
def digits(tmp_path_factory) -> str:
    """The embedded digits with 64 training images (4 iterations of 16 per
    epoch) and 539 validation images; shared, never written to by tests."""
    from sema_mm.datasets.digits import make_digits
    root = str(tmp_path_factory.mktemp('digits') / 'digits')
    make_digits(root, train_size=64)
    return root


@pytest.fixture(scope='session')
def slurm_cluster():
    """A real single-node Slurm (:class:`tests.slurm_cluster.LocalSlurm`:
    munged, slurmctld and slurmd started here, state in a temporary folder,
    8 CPUs and 8 fake GPUs on partition ``test``), stopped by PID at the
    end, whether the tests passed or not. Without slurm installed
    (``tools/setup_slurm.sh``) the tests that use it are skipped, or fail
    when ``CI=true``."""
    import os

    from tests.slurm_cluster import LocalSlurm, unavailable_reason
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get('CI', '').lower() == 'true':
            pytest.fail(f'CI runs the slurm tests: {reason}')
        pytest.skip(reason)
    cluster = LocalSlurm(partition='test').start()
    try:
        yield cluster
    finally:
        cluster.stop()
