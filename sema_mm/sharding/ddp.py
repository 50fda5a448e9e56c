"""The EMA of a data-parallel (DDP) model, sharded over its ranks.

Under DDP every rank holds the whole model and, after every optimizer step,
the same weights; an ordinary EMA is then W identical copies, one per rank.
With ``SwitchEMAHook(shard=True)`` each of the W ranks keeps and updates
only its own 1/W of the EMA:

* the averaged parameters are grouped by (device, dtype), in the model's
  parameter order; each group is seen as one flat sequence (every tensor
  flattened in memory order, :func:`flat_view`) and cut into W balanced
  contiguous ranges (:func:`balanced_ranges`; sizes differ by at most one
  element);
* rank ``r`` pairs its EMA with views of range ``r`` of the model's weights
  (:attr:`DDPShards.params`): an update reads and writes 1/W of the
  weights' bytes, with no communication;
* the whole EMA is only put together where it is needed, by a gather
  (:meth:`DDPShards.gather`: all-gathers of at most
  :data:`GATHER_ELEMENTS` elements of all ranks together, written straight
  into their destination): at a switch and a validation or test swap each
  rank writes its range into the model and the model's averaged weights are
  made whole again (:meth:`DDPShards.gather_model`); for a checkpoint and
  on request the EMA's ranges are gathered.

Every EMA value is computed by the same element-wise operation on the same
numbers as in the replicated EMA, so the results are bit-identical.

:class:`DDPShards` is the :class:`~sema_mm.sharding.adapter.ShardAdapter`
of such a model (its ``publish`` is the gather of the weights); the EMA
built on it is :class:`sema_mm.ema.sharded.DDPShardedEMA`.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.dist import all_gather, get_rank, get_world_size
from torch import Tensor, nn

from .adapter import ShardAdapter

#: Elements of all ranks together per all-gather of a gather (2**24 float32
#: values are 64 MiB): bounds its temporary memory.
GATHER_ELEMENTS = 2**24


def flat_view(tensor: Tensor) -> Tensor:
    """A 1-D view of all elements of ``tensor`` in memory order (for a
    contiguous tensor its ``view(-1)``; a dense tensor in another memory
    format, e.g. channels-last, is permuted to its memory order first).

    Raises:
        ValueError: ``tensor`` does not cover its memory densely (a strided
            view), so no flat view of it exists.
    """
    if tensor.is_contiguous():
        return tensor.view(-1)
    order = sorted(range(tensor.dim()), key=lambda d: -tensor.stride(d))
    permuted = tensor.permute(order)
    if not permuted.is_contiguous():
        raise ValueError(
            'SwitchEMAHook: shard=True needs parameters that cover their '
            f'memory densely; one has shape {tuple(tensor.shape)} and '
            f'strides {tensor.stride()}. Use shard=False.')
    return permuted.view(-1)


def balanced_ranges(total: int, parts: int) -> List[Tuple[int, int]]:
    """``parts`` contiguous ``[start, stop)`` ranges covering ``range(total)``
    whose sizes differ by at most one."""
    cuts = [r * total // parts for r in range(parts + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


class _Group:
    """Averaged parameters of one (device, dtype), as one flat sequence.

    Attributes:
        names (List[str]): Parameter names, in the model's order.
        offsets (List[int]): Start of each parameter in the sequence.
        ranges (List[Tuple[int, int]]): Each rank's range of it.
    """

    def __init__(self, names: List[str], tensors: List[Tensor],
                 world_size: int) -> None:
        self.names = names
        self.numels = [t.numel() for t in tensors]
        self.offsets = [sum(self.numels[:i]) for i in range(len(names))]
        self.ranges = balanced_ranges(sum(self.numels), world_size)

    def pieces(self, tensors: List[Tensor], rank: int) -> List[Tensor]:
        """Views of the part of each of ``tensors`` (this group's
        parameters, flat) that falls in ``rank``'s range (empty where
        none)."""
        start, stop = self.ranges[rank]
        out = []
        for flat, offset, numel in zip(tensors, self.offsets, self.numels):
            lo = min(max(start - offset, 0), numel)
            hi = max(min(stop - offset, numel), lo)
            out.append(flat[lo:hi])
        return out


class DDPShards(ShardAdapter):
    """This rank's share of a replicated (DDP) model's averaged parameters
    (the :class:`~sema_mm.sharding.adapter.ShardAdapter` protocol).

    Args:
        model (nn.Module): The training model, unwrapped from DDP.
        names (Sequence[str]): The floating-point parameters to average,
            in the model's order.
        world_size (int, optional): Number of ranks. Defaults to the
            process group's.
        rank (int, optional): This rank. Defaults to the process group's.

    Attributes:
        params (Dict[str, Tensor]): Parameter name -> this rank's range of
            it, a 1-D view of the live weights (empty when the rank holds
            none of it).
        groups (List[_Group]): The (device, dtype) groups and their ranges.
        gather_chunk (int): Elements each rank sends per all-gather of
            :meth:`gather`.
    """
    name = 'ddp'

    def __init__(self, model: nn.Module, names: Sequence[str],
                 world_size: Optional[int] = None,
                 rank: Optional[int] = None) -> None:
        self.world_size = get_world_size() if world_size is None \
            else world_size
        self.rank = get_rank() if rank is None else rank
        weights = dict(model.named_parameters())
        self._whole = {n: weights[n].detach() for n in names}
        by_place: Dict[Tuple, List[str]] = {}
        for name in names:
            t = self._whole[name]
            by_place.setdefault((t.device, t.dtype), []).append(name)
        self._flat = {n: flat_view(t) for n, t in self._whole.items()}
        self.groups = [
            _Group(group, [self._flat[n] for n in group], self.world_size)
            for group in by_place.values()
        ]
        self._ranges: Dict[str, Tensor] = {}
        for group in self.groups:
            self._ranges.update(zip(group.names, group.pieces(
                [self._flat[n] for n in group.names], self.rank)))
        self.gather_chunk = max(1, GATHER_ELEMENTS // self.world_size)
        super().__init__(model)

    def local_parts(self, raw: str,
                    param: Tensor) -> Tuple[Dict[str, Tensor], Dict[str, int]]:
        """This rank's range of an averaged parameter (none of the
        others)."""
        if raw not in self._ranges:
            return {}, {}
        return {raw: self._ranges[raw]}, {raw: param.numel()}

    def checkpoint_form(self) -> Tuple[str, bool]:
        """``('full', True)``: checkpoints hold the whole model, written by
        rank 0 (mmengine's ``@master_only`` saving)."""
        return 'full', True

    def publish(self) -> None:
        """Make the weights whole again after each rank wrote its range (a
        switch, a swap): :meth:`gather_model`."""
        self.gather_model()

    @torch.no_grad()
    def gather_full(self) -> Dict[str, Tensor]:
        """The whole model's state dict: every rank holds it (no
        communication)."""
        return dict(self.root.state_dict())

    @torch.no_grad()
    def scatter_full(self, state: Dict[str, Tensor]) -> None:
        """Load a whole state dict into the model (every rank); entries the
        model lacks are ignored."""
        self.root.load_state_dict(state, strict=False)

    def whole_params(self) -> Dict[str, Tensor]:
        """The averaged parameters, whole (every rank holds them)."""
        return dict(self._whole)

    # ----------------------------------------------------------- gathering
    @torch.no_grad()
    def gather(self, pieces: Dict[str, Tensor],
               out: Optional[Dict[str, Tensor]] = None) -> None:
        """Put together the whole tensors of which every rank holds its
        range in ``pieces`` (laid out as :attr:`params`): written into
        ``out`` (name -> a 1-D tensor of the whole parameter's size, in its
        memory order, on any device), or only sent (None). A collective:
        all-gathers of at most :attr:`gather_chunk` elements per rank
        (shorter ranges padded), so the temporary memory stays below
        ``(world size + 1) * gather_chunk`` elements."""
        for group in self.groups:
            own = [pieces[n] for n in group.names]
            dest = None if out is None else [out[n] for n in group.names]
            longest = max(stop - start for start, stop in group.ranges)
            for begin in range(0, longest, self.gather_chunk):
                end = min(begin + self.gather_chunk, longest)
                local = own[0].new_zeros(end - begin)
                _copy_spans(_spans(own, begin, end), local)
                for (start, stop), part in zip(group.ranges,
                                               all_gather(local)):
                    lo, hi = start + begin, min(start + end, stop)
                    if dest is not None and lo < hi:
                        _copy_spans(_spans(dest, lo, hi), part,
                                    to_spans=True)

    @torch.no_grad()
    def gather_model(self) -> None:
        """Make the model's averaged weights whole from every rank's range
        of them (after each rank wrote its range: a switch or a swap); a
        collective."""
        self.gather(self.params, self._flat)

    def empty_whole(self, name: str, device: torch.device) -> Tensor:
        """An uninitialised tensor of parameter ``name``'s shape, dtype and
        memory format on ``device`` (:func:`flat_view` of it is a
        :meth:`gather` destination)."""
        return torch.empty_like(self._whole[name], device=device)


def _spans(flats: List[Tensor], start: int, stop: int) -> List[Tensor]:
    """Views covering ``[start, stop)`` of the concatenation of the 1-D
    tensors ``flats``."""
    spans, offset = [], 0
    for flat in flats:
        lo, hi = max(start - offset, 0), min(stop - offset, flat.numel())
        if lo < hi:
            spans.append(flat[lo:hi])
        offset += flat.numel()
        if offset >= stop:
            break
    return spans


def _copy_spans(spans: List[Tensor], flat: Tensor,
                to_spans: bool = False) -> None:
    """Copy the consecutive ``spans`` into the start of ``flat``, or with
    ``to_spans`` the start of ``flat`` into them."""
    offset = 0
    for span in spans:
        part = flat[offset:offset + span.numel()]
        (span if to_spans else part).copy_(part if to_spans else span)
        offset += span.numel()
