"""Matched lists of (averaged, source) tensors for fused multi-tensor ops.

An averaged model (an EMA copy) and the model it follows hold tensors with the
same names. :class:`TensorPairs` looks those names up once, groups the pairs by
device and dtype, and then runs every operation SEMA needs (seed, update,
switch, swap, finiteness check) as a few ``torch._foreach_*`` kernels
instead of a Python loop of per-tensor kernels. The lists hold references to
the live tensors, so nothing is rebuilt per step.
"""
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn


def named_tensors(module: nn.Module) -> Dict[str, Tensor]:
    """All parameters and buffers of ``module`` by their state-dict names."""
    tensors = dict(module.named_parameters())
    tensors.update(module.named_buffers())
    return tensors


def name_matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether ``name`` is one of ``patterns`` or lies under one of them.

    ``'encoder_k'`` matches ``'encoder_k'`` and
    ``'encoder_k.module.conv.weight'`` but not ``'encoder_kv.weight'``.
    """
    return any(name == p or name.startswith(p + '.') for p in patterns)


class TensorPairs:
    """Pairs of averaged and source tensors, grouped for fused kernels.

    Args:
        averaged (nn.Module): The module holding the averaged tensors, e.g.
            ``ema_model.module``.
        source (nn.Module): The model being averaged (unwrapped from DDP).
        names (Sequence[str]): Names (as in ``named_parameters`` /
            ``named_buffers``) of the averaged tensors to pair, each a
            floating-point tensor.
        source_names (Sequence[str], optional): The names of their partners
            in ``source``, same order and shapes. Defaults to ``names``.
    """

    def __init__(self, averaged: nn.Module, source: nn.Module,
                 names: Sequence[str],
                 source_names: Optional[Sequence[str]] = None) -> None:
        avg, src = named_tensors(averaged), named_tensors(source)
        groups: Dict[Tuple, Tuple[List[Tensor], List[Tensor]]] = \
            defaultdict(lambda: ([], []))
        order: Dict[Tuple, List[str]] = defaultdict(list)
        for name, src_name in zip(names, source_names or names):
            a, s = avg[name].detach(), src[src_name].detach()
            if a.shape != s.shape:
                raise ValueError(
                    f'The averaged model and the model disagree on the shape '
                    f'of `{name}`: {tuple(a.shape)} vs {tuple(s.shape)}.')
            key = (a.device, a.dtype, s.device)
            groups[key][0].append(a)
            groups[key][1].append(s)
            order[key].append(name)
        self.names = list(names)
        self._groups = list(groups.items())
        # Names in the order of averaged_tensors().
        self.grouped_names = [n for key in groups for n in order[key]]

    def __len__(self) -> int:
        return len(self.names)

    def _source_lists(self) -> Iterable[Tuple[List[Tensor], List[Tensor]]]:
        """Yield (averaged, source) lists with the source on the averaged
        tensors' device (a copy only when the EMA is kept elsewhere)."""
        for (a_dev, a_dtype, s_dev), (avg, src) in self._groups:
            if s_dev != a_dev or src[0].dtype != a_dtype:
                src = [s.to(a_dev, a_dtype, non_blocking=True) for s in src]
            yield avg, src

    @torch.no_grad()
    def lerp_(self, weight: float) -> None:
        """``avg = (1 - weight) * avg + weight * src`` for every pair."""
        for avg, src in self._source_lists():
            torch._foreach_lerp_(avg, src, weight)

    @torch.no_grad()
    def copy_to_averaged(self) -> None:
        """``avg = src`` for every pair (seeding the average)."""
        for avg, src in self._source_lists():
            torch._foreach_copy_(avg, src)

    @torch.no_grad()
    def copy_to_source(self) -> None:
        """``src = avg`` for every pair (the SEMA switch)."""
        for _, (avg, src) in self._groups:
            torch._foreach_copy_(src, avg, non_blocking=True)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the values of every pair."""
        for _, (avg, src) in self._groups:
            tmp = torch._foreach_clone(avg)
            torch._foreach_copy_(avg, src, non_blocking=True)
            torch._foreach_copy_(src, tmp, non_blocking=True)

    def averaged_tensors(self) -> List[Tensor]:
        """The averaged tensors, in group order."""
        return [t for _, (avg, _) in self._groups for t in avg]

    def source_tensors(self) -> List[Tensor]:
        """The source tensors, in group order."""
        return [t for _, (_, src) in self._groups for t in src]


def _max_norms(tensors: List[Tensor], ord: float,
               dtype: Optional[torch.dtype] = None) -> Tensor:
    """The largest ``ord``-norm of ``tensors``, one fused pass per device."""
    by_device: Dict[torch.device, List[Tensor]] = defaultdict(list)
    for t in tensors:
        by_device[t.device].append(t)
    return torch.stack([
        torch.stack(torch._foreach_norm(ts, ord, dtype=dtype)).max().cpu()
        for ts in by_device.values()
    ]).max()


@torch.no_grad()
def all_finite(tensors: List[Tensor]) -> bool:
    """Whether every element of ``tensors`` is finite.

    Finite 2-norms prove it (a NaN or an infinity makes its tensor's norm
    non-finite), and they are the cheapest fused reduction (the max-norm is
    several times slower on CPUs). Only when a 2-norm is not finite, which
    also happens when the sum of squares of large finite values overflows,
    is the answer settled by the exact max-norm, computed in float32 so
    large half values do not overflow. One host read per device: call it
    where a synchronisation is acceptable (once per switch), not per
    iteration.
    """
    if not tensors:
        return True
    if bool(_max_norms(tensors, 2.).isfinite()):
        return True
    return bool(_max_norms(tensors, float('inf'), torch.float32).isfinite())
