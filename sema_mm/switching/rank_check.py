"""Check that every rank holds the same EMA (``check_ranks=True``).

Under DDP every rank keeps its own EMA of its own copy of the weights; DDP
keeps the weights identical, so the EMAs stay bit-identical too unless some
code behaves differently per rank. :func:`check_ranks_agree` compares one
float64 (sum, 2-norm) checksum per averaged tensor with a single
``all_gather`` and names the first tensor where two ranks differ.

**Sharded models** (FSDP, :class:`~sema_mm.ema.sharded.ShardedPairs`): each
rank averages a different shard, so the values differ by construction and
are not compared. :func:`check_shards_agree` checks what must agree instead:
every rank averages the same tensors, has done the same number of EMA
updates, and the ranks' shards of each tensor together hold a whole number
of copies of it (once with ``FULL_SHARD``), i.e. no shard is missing or
counted twice.
"""
import zlib

import torch
from mmengine.dist import all_gather, get_rank, get_world_size

from ..ema.tensor_pairs import TensorPairs


@torch.no_grad()
def check_ranks_agree(pairs: TensorPairs, where: str) -> None:
    """Raise ``RuntimeError`` if the ranks' averaged tensors differ.

    Args:
        pairs (TensorPairs): The EMA's tensor pairs.
        where (str): When the check runs, for the message (e.g. ``'the end
            of epoch 3'``).
    """
    if get_world_size() == 1:
        return
    if getattr(pairs, 'sharded', False):
        check_shards_agree(pairs, where)
        return
    local = torch.stack([
        torch.stack([t.sum(dtype=torch.float64),
                     t.double().norm()]) for t in pairs.averaged_tensors()
    ]).flatten()
    for rank, other in enumerate(all_gather(local)):
        if torch.equal(other.cpu(), local.cpu()):
            continue
        index = int((other.cpu() != local.cpu()).nonzero()[0]) // 2
        raise RuntimeError(
            f'SwitchEMAHook: at {where}, the EMA of rank {get_rank()} '
            f'differs from that of rank {rank}; first differing parameter: '
            f'`{pairs.grouped_names[index]}`. The ranks no longer train the '
            'same model: check for rank-dependent code or a missing gradient '
            'synchronisation.')


@torch.no_grad()
def check_shards_agree(pairs: TensorPairs, where: str) -> None:
    """Raise ``RuntimeError`` if the ranks' EMA shards do not form one EMA
    (see the module docstring); one ``all_gather``.

    Args:
        pairs (ShardedPairs): The sharded EMA's tensor pairs.
        where (str): When the check runs, for the message.
    """
    names = sorted(pairs.names)
    sizes = dict(zip(pairs.grouped_names,
                     (t.numel() for t in pairs.averaged_tensors())))
    digest = zlib.crc32('\n'.join(names).encode())
    local = torch.tensor([digest, pairs.num_updates()] +
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
        whole = pairs.global_numels[name]
        if whole and (total == 0 or total % whole):
            raise RuntimeError(
                f'SwitchEMAHook: at {where}, the ranks\' EMA shards of '
                f'`{name}` hold {int(total)} elements, not a multiple of its '
                f'{whole}: a shard is missing or the wrapping differs '
                'between ranks.')
