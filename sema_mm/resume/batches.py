"""A batch sampler that numbers its batches and can start mid-epoch.

:class:`SeededBatches` wraps the batch sampler a loader would use (torch's
``BatchSampler`` over the config's sampler, mmdet's
``AspectRatioBatchSampler``, or any ``batch_sampler`` of a config) and
yields each batch as a list of ``(batch_number, index)`` pairs, which
:class:`~sema_mm.resume.dataset.SeededDataset` turns into per-sample seeds.
``batch_number`` counts the batches of this rank since the start of
training: it is the ``runner.iter`` of the iteration that consumes the
batch, whatever the number of loader workers or how far they prefetch.

Resuming mid-epoch skips the batches already trained on *at the index
level*: the wrapped batch sampler's index lists are drawn and dropped, no
sample is loaded or augmented.
"""
from typing import Iterable, Iterator, List, Sized, Tuple

from torch.utils.data import Sampler

Pair = Tuple[int, int]


class SeededBatches(Sampler):
    """Number the batches of ``batch_sampler``.

    Args:
        batch_sampler (Iterable[list[int]]): The loader's real batch
            sampler.

    Attributes:
        sampler: The wrapped batch sampler's ``sampler`` (None if it has
            none), so that ``dataloader.batch_sampler.sampler.set_epoch``
            (mmengine's ``DistSamplerSeedHook``) reaches the config's
            sampler.
    """

    def __init__(self, batch_sampler: Iterable[List[int]]) -> None:
        self.batch_sampler = batch_sampler
        self.sampler = getattr(batch_sampler, 'sampler', None)
        self._number = 0
        self._skip = 0

    def start_at(self, number: int, skip: int = 0) -> None:
        """Make the next pass skip ``skip`` batches of the wrapped sampler
        and number the first batch it yields ``number``.

        Args:
            number (int): Batch number (training iteration) of the first
                batch yielded.
            skip (int): Batches of the wrapped sampler to draw and drop
                first.
        """
        self._number, self._skip = int(number), int(skip)

    def __iter__(self) -> Iterator[List[Pair]]:
        # Lazy: torch's multi-process loader iterator calls iter() twice
        # and uses the second; the first must not consume a sampler whose
        # iterators share one stream (mmengine's InfiniteSampler).
        return self._numbered(self._number, self._skip)

    def _numbered(self, number: int, skip: int) -> Iterator[List[Pair]]:
        batches = iter(self.batch_sampler)
        for _ in range(skip):
            if next(batches, None) is None:
                break
        for indices in batches:
            yield [(number, index) for index in indices]
            number += 1
        self._number, self._skip = number, 0

    def __len__(self) -> int:
        assert isinstance(self.batch_sampler, Sized)
        return len(self.batch_sampler)
