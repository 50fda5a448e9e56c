"""Matched lists of (averaged, source) tensors for fused multi-tensor ops.

An averaged model (an EMA copy) and the model it follows hold tensors with the
same names. :class:`TensorPairs` looks those names up once, groups the pairs by
device and dtype, and then runs every operation SEMA needs (seed, update,
switch, swap, finiteness check) as a few ``torch._foreach_*`` kernels
instead of a Python loop of per-tensor kernels (through
:mod:`sema_mm.compat.torch_ops`, which falls back to per-tensor loops where a
torch release lacks a kernel). The lists hold references to the live
tensors, so nothing is rebuilt per step.

**EMA on another device** (``device='cpu'`` for a model on a GPU): the
model's tensors are first copied into staging buffers on the EMA's device,
allocated once (pinned host memory when the EMA is on the CPU, so the copies
run asynchronously), with one wait on the model's device per update before
any staged value is read. A copy to the host with ``non_blocking=True``
returns before the data has arrived, so reading it without that wait would
read stale memory. Once-per-epoch operations (seed, switch, swap) between
devices are plain blocking copies.
"""
import math
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..compat.torch_ops import (
    foreach_clone,
    foreach_copy_,
    foreach_lerp_,
    foreach_norm,
    foreach_sub,
)

#: Elements per fused difference in :meth:`TensorPairs.relative_distance`:
#: bounds its temporary memory (2**24 float32 values are 64 MiB).
DISTANCE_CHUNK = 2**24


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


class _Group:
    """Averaged and source tensors that share device and dtype pairs."""

    def __init__(self, avg: List[Tensor], src: List[Tensor]) -> None:
        self.avg, self.src = avg, src
        a, s = avg[0], src[0]
        self.same_place = a.device == s.device and a.dtype == s.dtype
        # Staging buffers for sources elsewhere, allocated at first use.
        self._staged: Optional[List[Tensor]] = None

    def stage(self) -> List[Tensor]:
        """The source tensors on the averaged tensors' device and dtype.

        For a source on another device the copies are only enqueued; call
        :meth:`TensorPairs._wait_for_staging` before reading them.
        """
        if self.same_place:
            return self.src
        if self._staged is None:
            pin = (self.avg[0].device.type == 'cpu'
                   and self.src[0].device.type == 'cuda')
            self._staged = [
                torch.empty(a.shape, dtype=a.dtype, device=a.device,
                            pin_memory=pin) for a in self.avg
            ]
        foreach_copy_(self._staged, self.src, non_blocking=True)
        return self._staged


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
            key = (a.device, a.dtype, s.device, s.dtype)
            groups[key][0].append(a)
            groups[key][1].append(s)
            order[key].append(name)
        self.names = list(names)
        self._groups = [_Group(a, s) for a, s in groups.values()]
        # Names in the order of averaged_tensors().
        self.grouped_names = [n for key in groups for n in order[key]]
        # Source devices whose copies to the host must be waited for.
        self._host_waits = sorted(
            {g.src[0].device for g in self._groups
             if g.src[0].device.type == 'cuda'
             and g.avg[0].device.type == 'cpu'}, key=str)

    def __len__(self) -> int:
        return len(self.names)

    def _wait_for_staging(self) -> None:
        """Block until the staged copies to the host have landed (one wait
        per source device)."""
        for device in self._host_waits:
            torch.cuda.current_stream(device).synchronize()

    @torch.no_grad()
    def lerp_(self, weight: float) -> None:
        """``avg = (1 - weight) * avg + weight * src`` for every pair."""
        staged = [g.stage() for g in self._groups]
        self._wait_for_staging()
        for group, src in zip(self._groups, staged):
            foreach_lerp_(group.avg, src, weight)

    @torch.no_grad()
    def copy_to_averaged(self) -> None:
        """``avg = src`` for every pair (seeding the average)."""
        for g in self._groups:
            foreach_copy_(g.avg, g.src)

    @torch.no_grad()
    def copy_to_source(self) -> None:
        """``src = avg`` for every pair (the SEMA switch)."""
        for g in self._groups:
            foreach_copy_(g.src, g.avg)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the values of every pair."""
        for g in self._groups:
            tmp = foreach_clone(g.avg)
            foreach_copy_(g.avg, g.src)
            foreach_copy_(g.src, tmp)

    @torch.no_grad()
    def distance_sums(self) -> Tensor:
        """``(||src - avg||^2, ||src||^2)`` over all pairs, as a float64
        CPU tensor.

        The differences are formed in chunks of at most
        :data:`DISTANCE_CHUNK` elements, each with fused kernels, so the
        temporary memory stays bounded; the sums are read to the host at
        the end.
        """
        diff_sq, src_sq = [], []
        staged = [g.stage() for g in self._groups]
        self._wait_for_staging()
        for group, src in zip(self._groups, staged):
            start = 0
            while start < len(src):
                stop, size = start, 0
                while stop < len(src) and (stop == start or size + src[
                        stop].numel() <= DISTANCE_CHUNK):
                    size += src[stop].numel()
                    stop += 1
                diffs = foreach_sub(src[start:stop], group.avg[start:stop])
                for part, out in ((diffs, diff_sq),
                                  (src[start:stop], src_sq)):
                    norms = foreach_norm(part, 2., dtype=torch.float32)
                    out.append(torch.stack(norms).double().square().sum())
                start = stop
        return torch.tensor([sum(float(t) for t in diff_sq),
                             sum(float(t) for t in src_sq)],
                            dtype=torch.float64)

    def relative_distance(self) -> float:
        """``||src - avg|| / ||src||`` over all pairs (global 2-norms): how
        far copying the averaged tensors into the source moves it."""
        return relative_norm(self.distance_sums())

    def groups(self) -> List[Tuple[List[Tensor], List[Tensor]]]:
        """The (averaged, source) tensor lists of each fused group (one
        device and dtype pair each), as :meth:`lerp_` runs them."""
        return [(g.avg, g.src) for g in self._groups]

    def averaged_tensors(self) -> List[Tensor]:
        """The averaged tensors, in group order."""
        return [t for g in self._groups for t in g.avg]

    def source_tensors(self) -> List[Tensor]:
        """The source tensors, in group order."""
        return [t for g in self._groups for t in g.src]


def relative_norm(sums: Tensor) -> float:
    """``sqrt(sums[0] / sums[1])``, the ratio of two norms given by their
    squares (0 when both are 0)."""
    diff_sq, src_sq = (float(s) for s in sums)
    return math.sqrt(diff_sq) / max(math.sqrt(src_sq),
                                    torch.finfo(torch.float32).tiny)


def _max_norms(tensors: List[Tensor], ord: float,
               dtype: Optional[torch.dtype] = None) -> Tensor:
    """The largest ``ord``-norm of ``tensors``, one fused pass per device."""
    by_device: Dict[torch.device, List[Tensor]] = defaultdict(list)
    for t in tensors:
        by_device[t.device].append(t)
    return torch.stack([
        torch.stack(foreach_norm(ts, ord, dtype=dtype)).max().cpu()
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
    large half values do not overflow (over the non-empty tensors). One
    host read per device: call it where a synchronisation is acceptable
    (once per switch), not per iteration.
    """
    if not tensors:
        return True
    if bool(_max_norms(tensors, 2.).isfinite()):
        return True
    # The max-norm of an empty tensor (a rank's empty shard) is undefined.
    tensors = [t for t in tensors if t.numel()]
    return bool(_max_norms(tensors, float('inf'), torch.float32).isfinite())
