"""Random seeds derived from positions, and seeding the global generators.

Exact resume needs every random draw to depend on *where* in training it
happens, not on how the process got there (loader workers, restarts,
prefetching). :func:`derive_seed` turns a tuple of integers (e.g. the run's
seed, a batch number and a sample index) into a 32-bit seed with numpy's
``SeedSequence`` (a stable hash: the same tuple gives the same seed on every
machine and version). :func:`seeded` runs a block with python's ``random``,
``numpy.random`` and torch's CPU generator seeded from it and restores
their previous states afterwards; :func:`seed_globals` seeds them (and the
CUDA generators) for good.
"""
import contextlib
import random
from typing import Iterator

import numpy as np
import torch

_UINT64 = 2**64

#: First number after the run's seed in :func:`derive_seed` for the seed of
#: one sample of the data pipeline (``SAMPLE_STREAM, batch, index``) and
#: for the global generators at one training iteration (``ITERATION_STREAM,
#: rank, iteration``): the two never share a seed.
SAMPLE_STREAM = 0
ITERATION_STREAM = 1


def derive_seed(*numbers: int) -> int:
    """A seed in ``[0, 2**32)`` that depends only on ``numbers``.

    Args:
        *numbers (int): Any integers (negative ones are taken modulo
            ``2**64``).

    Returns:
        int: The first word of ``numpy.random.SeedSequence(numbers)``.
    """
    entropy = [int(n) % _UINT64 for n in numbers]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with python's, numpy's and torch's CPU global
    generators seeded with ``seed``; restore their states after it.

    torch's CUDA generators are left alone (``torch.manual_seed`` would
    seed them too): data pipelines run on the CPU, often in loader workers
    that must not initialise CUDA.
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    torch_state = torch.default_generator.get_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.default_generator.set_state(torch_state)


def seed_globals(seed: int) -> None:
    """Seed python's, numpy's and torch's (CPU and every CUDA device's)
    global generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
