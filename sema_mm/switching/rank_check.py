"""Check that every rank holds the same EMA (``check_ranks=True``).

Under DDP every rank keeps its own EMA of its own copy of the weights; DDP
keeps the weights identical, so the EMAs stay bit-identical too unless some
code behaves differently per rank. :func:`check_ranks_agree` compares one
float64 (sum, 2-norm) checksum per averaged tensor with a single
``all_gather`` and names the first tensor where two ranks differ.
"""
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
