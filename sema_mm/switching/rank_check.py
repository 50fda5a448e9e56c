"""Check that every rank holds the same EMA (``check_ranks=True``).

Under DDP every rank keeps its own EMA of its own copy of the weights; DDP
keeps the weights identical, so the EMAs stay bit-identical too unless some
code behaves differently per rank. :func:`check_ranks_agree` compares one
float64 (sum, 2-norm) checksum per averaged tensor with a single
``all_gather`` and names the first tensor where two ranks differ.

**Sharded models** (:class:`~sema_mm.ema.sharded.ShardedEMA`): each rank
averages a different shard, so the values differ by construction and are
not compared. :func:`check_shards_agree` checks what must agree instead:
every rank averages the same tensors, has done the same number of EMA
updates, and the ranks' shards of each tensor together cover it as the
sharding says (:meth:`~sema_mm.sharding.adapter.ShardAdapter.covers`: a
whole number of copies for FSDP, once with ``FULL_SHARD``), i.e. no shard
is missing or counted twice.

A DDP model whose EMA is sharded (``shard=True``,
:class:`~sema_mm.ema.sharded.DDPShardedEMA`) holds the whole weights on
every rank: besides the shards' layout, the weights' checksums are compared
as the EMA's are without sharding (:func:`check_values_agree`; no gather).

Each averager runs the check that fits it
(:meth:`~sema_mm.ema.averagers.Averager.check_ranks`).
"""
import zlib
from typing import Callable, Dict

import torch
from mmengine.dist import all_gather, get_rank, get_world_size
from torch import Tensor

from ..ema.tensor_pairs import TensorPairs


@torch.no_grad()
def check_ranks_agree(pairs: TensorPairs, where: str) -> None:
    """Raise ``RuntimeError`` if the ranks' averaged tensors differ.

    Args:
        pairs (TensorPairs): The EMA's tensor pairs.
        where (str): When the check runs, for the message (e.g. ``'the end
            of epoch 3'``).
    """
    check_values_agree(
        dict(zip(pairs.grouped_names, pairs.averaged_tensors())), where,
        'EMA')


@torch.no_grad()
def check_values_agree(tensors: Dict[str, Tensor], where: str,
                       what: str) -> None:
    """Raise ``RuntimeError`` if ``tensors`` differ between the ranks (one
    float64 checksum pair per tensor, one ``all_gather``); ``what`` they
    are, for the message."""
    if get_world_size() == 1:
        return
    local = torch.stack([
        torch.stack([t.sum(dtype=torch.float64),
                     t.double().norm()]) for t in tensors.values()
    ]).flatten()
    names = list(tensors)
    for rank, other in enumerate(all_gather(local)):
        if torch.equal(other.cpu(), local.cpu()):
            continue
        index = int((other.cpu() != local.cpu()).nonzero()[0]) // 2
        raise RuntimeError(
            f'SwitchEMAHook: at {where}, the {what} of rank {get_rank()} '
            f'differs from that of rank {rank}; first differing parameter: '
            f'`{names[index]}`. The ranks no longer train the '
            'same model: check for rank-dependent code or a missing gradient '
            'synchronisation.')


@torch.no_grad()
def check_shards_agree(pairs: TensorPairs, num_updates: int,
                       global_numels: Dict[str, int],
                       covers: Callable[[int, int], bool],
                       where: str) -> None:
    """Raise ``RuntimeError`` if the ranks' EMA shards do not form one EMA
    (see the module docstring); one ``all_gather``.

    Args:
        pairs (TensorPairs): The sharded EMA's pairs of local tensors.
        num_updates (int): The EMA's update count on this rank.
        global_numels (Dict[str, int]): Elements of each whole tensor.
        covers (Callable[[int, int], bool]): Whether the ranks' summed
            local sizes of a tensor (first argument) cover its whole size.
        where (str): When the check runs, for the message.
    """
    if get_world_size() == 1:
        return
    names = sorted(pairs.names)
    sizes = dict(zip(pairs.grouped_names,
                     (t.numel() for t in pairs.averaged_tensors())))
    digest = zlib.crc32('\n'.join(names).encode())
    local = torch.tensor([digest, num_updates] +
                         [sizes[n] for n in names], dtype=torch.float64)
    gathered = [t.cpu() for t in all_gather(local)]
    for rank, other in enumerate(gathered):
        if other.shape != local.shape or other[0] != local[0]:
            raise RuntimeError(
                f'SwitchEMAHook: at {where}, rank {get_rank()} and rank '
                f'{rank} do not average the same tensors: the ranks are not '
                'wrapped alike.')
        if other[1] != local[1]:
            raise RuntimeError(
                f'SwitchEMAHook: at {where}, rank {get_rank()} has made '
                f'{int(local[1])} EMA updates and rank {rank} '
                f'{int(other[1])}: the ranks skipped different updates.')
    totals = torch.stack(gathered)[:, 2:].sum(0)
    for name, total in zip(names, totals.tolist()):
        whole = global_numels[name]
        if not covers(int(total), whole):
            raise RuntimeError(
                f'SwitchEMAHook: at {where}, the ranks\' EMA shards of '
                f'`{name}` hold {int(total)} elements, not a multiple of its '
                f'{whole}: a shard is missing or the wrapping differs '
                'between ranks.')
