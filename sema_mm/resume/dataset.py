"""A dataset view whose samples are random only through their position.

:class:`SeededDataset` wraps the training dataset the loop built. An item
asked for as ``(batch_number, index)`` (what
:class:`~sema_mm.resume.batches.SeededBatches` yields) is the wrapped
dataset's ``dataset[index]``, computed with python's, numpy's and torch's
CPU generators seeded from ``derive_seed(seed, SAMPLE_STREAM,
batch_number, index)``: the
random augmentation of a sample then depends on the run's seed, the
iteration and the sample only, not on the loader worker that computes it,
``num_workers``, persistent workers or the loader's base seed, so a resumed
run draws exactly what the uninterrupted one drew. A plain integer index
passes through unchanged.

Every other attribute is the wrapped dataset's, read and written (e.g.
``metainfo``, ``get_data_info``, and a ``pipeline`` replaced by mmdet's
``PipelineSwitchHook``).
"""
from typing import Any, Tuple, Union

from torch.utils.data import Dataset

from .seeding import SAMPLE_STREAM, derive_seed, seeded


class SeededDataset(Dataset):
    """Seed each sample from its position (see the module docstring).

    Args:
        dataset (Dataset): The training dataset.
        seed (int): The run's seed.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        object.__setattr__(self, 'dataset', dataset)
        object.__setattr__(self, 'seed', int(seed))

    def __getitem__(self, key: Union[int, Tuple[int, int]]) -> Any:
        if isinstance(key, tuple):
            number, index = key
            with seeded(derive_seed(self.seed, SAMPLE_STREAM, number,
                                     index)):
                return self.dataset[index]
        return self.dataset[key]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name == 'dataset':  # not yet set, e.g. while unpickling
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.dataset, name, value)
