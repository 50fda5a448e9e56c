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
