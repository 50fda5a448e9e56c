"""SEMA for sharded models (FSDP1, FSDP2): every rank averages its own shard.

Under FSDP every rank holds a shard of each parameter (and of the optimizer
state); a deep copy of the model, which is what an ordinary EMA is, would
copy FSDP's machinery rather than the weights (and fails with
``use_orig_params=False``). :class:`ShardedEMA` instead allocates, on every
rank, one EMA tensor per local shard (same shape, device and dtype), pairs it
with the live shard (found by the model's adapter,
:mod:`sema_mm.sharding.adapter`), and runs the same update rule
(:func:`~sema_mm.ema.momentum.ema_step`) and fused kernels as
:class:`~sema_mm.ema.FusedEMA` over those pairs:

* update (``_foreach_lerp_``), seed and switch (``_foreach_copy_``),
  validation swap: purely local, no communication;
* EMA memory per rank is the size of the local shard, i.e. that of the model
  divided by the number of ranks that share it;
* normalisation statistics are not sharded: with ``buffers='average'`` each
  rank keeps an EMA of its own, which the policy averages over ranks at the
  switch, as under DDP.

Because each rank's EMA is one piece of the whole, decisions must be taken
together: an update is skipped on every rank when the non-finite check fails
on any (:meth:`ShardedEMA.agree`), an EMA with a non-finite value on any rank
is switched in on none, the switch distance is computed over the whole
model (:class:`LocalPairs`), and the cross-rank check compares the layout,
not the values (:meth:`ShardedEMA.check_ranks`).

Checkpoints follow the strategy's state-dict form (mmengine
``FSDPStrategy(state_dict_cfg=...)``, sema_mm's ``FSDP2Strategy``; the
adapter's :meth:`~sema_mm.sharding.adapter.ShardAdapter.checkpoint_form`),
in the formats of :mod:`sema_mm.ema.checkpoints`:

* ``'full'``: as for an ordinary EMA (:class:`~sema_mm.ema.OwnEMA`): the
  checkpoint's ``state_dict`` holds the whole EMA, ready to deploy or to
  ``load_from`` in a DDP or single-device config, and ``ema_state_dict``
  the model's own weights (``module.``-prefixed, with ``steps``), which
  resuming swaps back. Gathering and scattering use FSDP's own full state
  dict (FSDP2: ``torch.distributed.checkpoint``'s), so any sharding
  strategy and wrapping policy is handled. The
  normalisation statistics, which differ between ranks between switches
  and of which FSDP's full state dict keeps rank 0's, are saved for every
  rank (:data:`~sema_mm.ema.checkpoints.RANK_NORM_STATS`), so that resuming
  is exact.
* ``'local'`` (per-rank files): ``state_dict`` is FSDP's local (flat) state
  of the model's weights, and ``ema_state_dict`` holds this rank's EMA
  shards by parameter name (``shards``), ``steps`` and the world size.
  Resuming needs the same number of ranks and the same wrapping.

:class:`DDPShardedEMA` is the same EMA for a DDP model, whose ranks hold
the whole weights (``SwitchEMAHook(shard=True)``): each rank averages a
range of them (:class:`~sema_mm.sharding.DDPShards`), a switch or a swap
makes the weights whole again with a gather (the adapter's ``publish``),
and checkpoints have the form of an ordinary EMA, gathered to rank 0
before mmengine saves there.
"""
import logging
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from mmengine.dist import all_gather, all_reduce, get_rank, get_world_size
from mmengine.logging import print_log
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

from ..errors import require
from ..sharding import DDPShards, ShardAdapter, flat_view
from ..switching.rank_check import check_shards_agree, check_values_agree
from .averagers import Averager
from .checkpoints import (
    RANK_NORM_STATS,
    fitting_ema_state,
    full_ema_state,
    local_ema_state,
    split_full,
    warn_no_ema_state,
)
from .fused_ema import PythonStepCounter
from .momentum import MomentumSchedule, ema_step
from .tensor_pairs import TensorPairs, name_matches, relative_norm


class _NormStats(_NormBase):
    """Holds the EMA of one normalisation layer's running statistics (and,
    as plain buffers, the EMA of its sharded affine parameters), so that
    the norm-statistics policies find it as they find a BatchNorm."""

    def __init__(self) -> None:  # no weights of its own
        nn.Module.__init__(self)
        self.track_running_stats = True


def tensor_tree(tensors: Dict[str, Tensor],
                norm_paths: Sequence[str] = ()) -> nn.Module:
    """A module whose ``named_buffers`` are ``tensors`` under their names
    (the tensors themselves, not copies); the modules at ``norm_paths`` are
    :class:`_NormStats`."""
    root = nn.Module()

    def child(path: str) -> nn.Module:
        module = root
        for part in path.split('.') if path else ():
            if part not in module._modules:
                module.add_module(part, nn.Module())
            module = module._modules[part]
        return module

    for path in sorted(norm_paths, key=lambda p: p.count('.')):
        if not path:
            continue
        parent, _, leaf = path.rpartition('.')
        child(parent).add_module(leaf, _NormStats())
    for name, tensor in tensors.items():
        parent, _, leaf = name.rpartition('.')
        child(parent).register_buffer(leaf, tensor)
    return root


class LocalPairs(TensorPairs):
    """:class:`TensorPairs` over this rank's local tensors of a sharded
    model: every operation first lets the adapter prepare the model
    (:meth:`~sema_mm.sharding.adapter.ShardAdapter.prepare`), a write into
    the model is published (:meth:`~sema_mm.sharding.adapter.ShardAdapter.
    publish`), and the relative switch distance is that of the whole model
    (sums of squares reduced over ranks).

    Args:
        averaged (nn.Module): The EMA's local tensors (buffers).
        source (nn.Module): The model's local tensors (buffers).
        names (Sequence[str]): The averaged tensors' names.
        shards (ShardAdapter): The model's adapter.
    """

    def __init__(self, averaged: nn.Module, source: nn.Module,
                 names: Sequence[str], shards: ShardAdapter) -> None:
        super().__init__(averaged, source, names)
        self.shards = shards

    def lerp_(self, weight: float) -> None:
        self.shards.prepare()
        super().lerp_(weight)

    def copy_to_averaged(self) -> None:
        self.shards.prepare()
        super().copy_to_averaged()

    def copy_to_source(self) -> None:
        self.shards.prepare()
        super().copy_to_source()
        self.shards.publish()

    def swap(self) -> None:
        self.shards.prepare()
        super().swap()
        self.shards.publish()

    def relative_distance(self) -> float:
        """``||src - avg|| / ||src||`` over the whole model (global
        2-norms; one all-reduce of two float64 numbers)."""
        self.shards.prepare()
        sums = self.distance_sums()
        all_reduce(sums, op='sum')
        return relative_norm(sums)


def norm_statistics(
        shards: ShardAdapter) -> Iterator[Tuple[str, str, _NormBase, str]]:
    """``(layer path, statistic name, layer, attribute)`` for the running
    mean and variance of every normalisation layer of the model."""
    for path, layer in shards.norm_layers.items():
        for stat in ('running_mean', 'running_var'):
            yield path, f'{path}.{stat}' if path else stat, layer, stat


def gather_per_rank(tensors: Dict[str, Tensor]) -> List[Dict[str, Tensor]]:
    """Every rank's ``tensors`` (same names and shapes on all ranks), as one
    dict per rank on the CPU, in rank order; one all-gather. Values travel
    as float64, which holds float32, float16 and bfloat16 exactly."""
    flat = torch.cat([t.detach().reshape(-1).double().cpu()
                      for t in tensors.values()] +
                     [torch.zeros(0, dtype=torch.float64)])
    per_rank = []
    for gathered in all_gather(flat):
        values, start = {}, 0
        for name, t in tensors.items():
            part = gathered[start:start + t.numel()]
            values[name] = part.to(t.dtype).reshape(t.shape)
            start += t.numel()
        per_rank.append(values)
    return per_rank


class EMAShards(PythonStepCounter, nn.Module):
    """The averaged model of :class:`ShardedEMA`: this rank's EMA shards
    and the update count.

    Args:
        module (nn.Module): The EMA tensors, as buffers under the
            parameters' names (see :func:`tensor_tree`).
        schedule (MomentumSchedule): The momentum of every update.
    """

    def __init__(self, module: nn.Module, schedule: MomentumSchedule) -> None:
        super().__init__()
        self.module = module
        self.schedule = schedule
        self.num_steps = 0
        self.register_buffer('steps', torch.tensor(0, dtype=torch.long))


class ShardedEMA(Averager):
    """The EMA of this rank's shards of a sharded model (see the module
    docstring).

    Args:
        shards (ShardAdapter): The model's local shards.
        model (nn.Module): The training model, unwrapped.
        schedule (MomentumSchedule): The momentum of every update.
        averages_norm_stats (bool): Also average normalisation statistics
            (``buffers='average'``).
        exclude (Sequence[str]): Names (parameters, buffers, modules) kept
            out of averaging and switching.
        device (torch.device, optional): Where the EMA is held. Defaults to
            each local tensor's device.
    """

    def __init__(self, shards: ShardAdapter, model: nn.Module,
                 schedule: MomentumSchedule, averages_norm_stats: bool,
                 exclude: Sequence[str] = (),
                 device: Optional[torch.device] = None) -> None:
        self.shards = shards
        self.model = model
        self.schedule = schedule
        exclude = tuple(exclude)
        src = {
            n: t
            for n, t in shards.params.items()
            if t.is_floating_point() and not name_matches(n, exclude)
        }
        norm_paths = []
        # (name, layer, statistic, the buffer paired now)
        self._norm_stats = []
        if averages_norm_stats:
            for path, name, layer, stat in norm_statistics(shards):
                if name_matches(path, exclude):
                    continue
                if path not in norm_paths:
                    norm_paths.append(path)
                buffer = getattr(layer, stat)
                self._norm_stats.append((name, layer, stat, buffer))
                src[name] = buffer.detach()
        names = list(src)
        self._extra_watched = shards.watched_for(names)
        ema = {
            n: t.detach().to(device or t.device, copy=True)
            for n, t in src.items()
        }
        self.ema_model = EMAShards(tensor_tree(ema, norm_paths), schedule)
        self._sources = src
        self.pairs = self._make_pairs()
        self.global_numels = {
            n: shards.global_numels.get(n, src[n].numel())
            for n in names
        }
        # Module names as the norm-statistics policies see them in the
        # forward module (with FSDP1's wrapper parts).
        raw = [
            r for name, raws in shards.module_names.items()
            if name and name_matches(name, exclude) for r in raws
        ]
        self.excluded = exclude + tuple(r for r in raw if r not in exclude)

    def _make_pairs(self) -> LocalPairs:
        return LocalPairs(self.ema_model.module,
                          tensor_tree(dict(self._sources)),
                          list(self._sources), self.shards)

    def _follow_buffers(self) -> None:
        """Pair the model's current normalisation buffers: FSDP1 replaces
        the buffer tensors (casting them to their device and dtype) at its
        lazy initialisation, in the first forward, after the pairs were
        built, and a cast of a buffer's ``.data`` keeps the tensor but not
        its storage. The pairs are then built again (the hook reads
        ``pairs`` from the averager at every use). A few identity checks
        when nothing changed."""
        changed = False
        for i, (name, layer, stat, buffer) in enumerate(self._norm_stats):
            current = getattr(layer, stat)
            if current is not buffer or \
                    current.data_ptr() != self._sources[name].data_ptr():
                self._norm_stats[i] = (name, layer, stat, current)
                self._sources[name] = current.detach()
                changed = True
        if changed:
            self.pairs = self._make_pairs()

    def watched_tensors(self) -> List[Tensor]:
        """The local shards and what the adapter adds (for DTensor
        parameters the parameters themselves: an in-place operation on a
        DTensor, an optimizer step, bumps the version counter of the
        DTensor, not of its local tensor)."""
        return self.pairs.source_tensors() + self._extra_watched

    def forward_model(self) -> nn.Module:
        """The adapter's forward module (FSDP1's root wrapper), else the
        unwrapped model."""
        return self.shards.forward_module or self.model

    # ------------------------------------------------------------ averaging
    def seed(self) -> None:
        self._follow_buffers()
        self.pairs.copy_to_averaged()
        self.ema_model.num_steps = 1

    def update(self) -> None:
        self._follow_buffers()
        self.ema_model.num_steps = ema_step(self.pairs,
                                            self.ema_model.num_steps,
                                            self.schedule)

    def agree(self, ok: bool) -> bool:
        """``ok`` on every rank (one all-reduce): each rank holds a
        different piece of the EMA, so all skip an update, or a switch,
        together."""
        if get_world_size() == 1:
            return ok
        flag = torch.tensor([int(ok)], dtype=torch.int32)
        all_reduce(flag, op='min')
        return bool(flag.item())

    def check_ranks(self, where: str) -> None:
        """The ranks average the same tensors, have made the same number of
        updates, and their shards cover every tensor (see
        :func:`~sema_mm.switching.rank_check.check_shards_agree`)."""
        check_shards_agree(self.pairs, self.ema_model.num_steps,
                           self.global_numels, self.shards.covers, where)

    # ---------------------------------------------------------- gathering
    @torch.no_grad()
    def full_state(self) -> Dict[str, Tensor]:
        """The whole EMA on every rank (a collective): the model's full
        state dict with the averaged tensors replaced by the EMA's
        (``SwitchEMAHook.full_ema_state_dict``); checkpoints use the
        strategy's form."""
        self._follow_buffers()
        self.pairs.swap()
        try:  # cloned before swapping back: buffers are not copies
            return {
                k: v.detach().clone()
                for k, v in self.shards.gather_full().items()
            }
        finally:
            self.pairs.swap()

    # --------------------------------------------------------- checkpoints
    def _norm_stats_here(self) -> Dict[str, Tensor]:
        """This rank's normalisation statistics: the model's
        (``model.<name>``) and the EMA's (``ema.<name>``, with
        ``buffers='average'``)."""
        stats = {
            'model.' + name: getattr(layer, stat)
            for _, name, layer, stat in norm_statistics(self.shards)
        }
        ema = dict(self.ema_model.module.named_buffers())
        for name, *_ in self._norm_stats:
            stats['ema.' + name] = ema[name]
        return stats

    def _own_norm_stats(self, checkpoint: dict) -> Dict[str, Tensor]:
        """This rank's statistics from a full checkpoint (see
        :data:`~sema_mm.ema.checkpoints.RANK_NORM_STATS`), those this run
        has; none, with a warning, when the checkpoint has another number
        of ranks (every rank then starts from rank 0's)."""
        per_rank = checkpoint.get(RANK_NORM_STATS)
        if per_rank is None:
            return {}
        if len(per_rank) != get_world_size():
            print_log(
                f'SwitchEMAHook: the checkpoint holds the normalisation '
                f'statistics of {len(per_rank)} ranks, this run has '
                f'{get_world_size()}; every rank starts from rank 0\'s.',
                logger='current', level=logging.WARNING)
            return {}
        expected = self._norm_stats_here()
        return {
            k: v
            for k, v in per_rank[get_rank()].items() if k in expected
        }

    def save(self, checkpoint: dict, ema_is_model: bool) -> None:
        self._follow_buffers()
        form, _ = self.shards.checkpoint_form()
        steps = torch.tensor(self.ema_model.num_steps)
        if form == 'local':
            tensors = (self.pairs.source_tensors()
                       if ema_is_model else self.pairs.averaged_tensors())
            checkpoint['ema_state_dict'] = local_ema_state(
                dict(zip(self.pairs.grouped_names, tensors)), steps,
                get_rank(), get_world_size())
            return
        # Full: the EMA in `state_dict` (as OwnEMA), gathered by the
        # strategy's full state dict.
        model_state = checkpoint['state_dict']
        if ema_is_model:
            ema_full = model_state
        else:
            self.pairs.swap()
            try:  # cloned before swapping back: buffers are not copies
                ema_full = {
                    k: v.detach().clone()
                    for k, v in self.shards.checkpoint_state_dict().items()
                }
            finally:
                self.pairs.swap()
        # Normalisation statistics are not sharded and differ between the
        # ranks between switches; FSDP's full state dict has rank 0's.
        per_rank = gather_per_rank(self._norm_stats_here())
        if not model_state:
            return  # rank0_only: this rank saves nothing
        checkpoint[RANK_NORM_STATS] = per_rank
        checkpoint['ema_state_dict'] = full_ema_state(
            model_state, ema_full, self.pairs.names, steps)

    def load(self, checkpoint: dict, strict: bool = True) -> bool:
        # FSDP: shards load only when they fit, whatever ``strict`` says.
        self._follow_buffers()
        ema_state = checkpoint.get('ema_state_dict')
        if ema_state is None:
            warn_no_ema_state()
            return False
        if 'shards' in ema_state:
            self._load_local(ema_state)
        else:
            self._load_full(checkpoint)
        self.ema_model.num_steps = int(ema_state['steps'])
        return True

    def _load_local(self, ema_state: dict) -> None:
        form, _ = self.shards.checkpoint_form()
        shards = ema_state['shards']
        world = ema_state.get('world_size')
        names = self.pairs.grouped_names
        ours = dict(zip(names, self.pairs.averaged_tensors()))
        mismatched = sorted(
            n for n in set(ours) & set(shards)
            if ours[n].shape != shards[n].shape)
        require(
            form == 'local' and world == get_world_size()
            and set(shards) == set(ours) and not mismatched,
            'the EMA shards of the resumed checkpoint do not fit this run '
            f'(checkpoint: {world} ranks, this run: {get_world_size()}; '
            f'state dict form here: {form!r}; missing: '
            f'{sorted(set(ours) - set(shards))[:5]}, unexpected: '
            f'{sorted(set(shards) - set(ours))[:5]}, shape mismatch: '
            f'{mismatched[:5]}). Local (per-rank) checkpoints resume with '
            'the same number of ranks and the same FSDP wrapping; save '
            "with state_dict_cfg='full' to change them.")
        with torch.no_grad():
            for name, tensor in ours.items():
                tensor.copy_(shards[name])

    def _load_full(self, checkpoint: dict) -> None:
        form, _ = self.shards.checkpoint_form()
        model_state = checkpoint['state_dict']
        ema_state = checkpoint['ema_state_dict']
        missing = [
            n for n in self.pairs.names
            if n not in model_state or 'module.' + n not in ema_state
        ]
        require(
            form == 'full' and not missing,
            'the resumed checkpoint holds a full EMA, but this run '
            f'{"saves " + form + " state dicts" if form != "full" else ""}'
            f'{"; it lacks " + str(missing[:5]) if missing else ""}. Resume '
            "a full checkpoint with FSDPStrategy(state_dict_cfg='full') "
            'and the same model.')
        ema_full = split_full(model_state, ema_state, self.pairs.names)
        for key, value in self._own_norm_stats(checkpoint).items():
            part, _, name = key.partition('.')
            (model_state if part == 'model' else ema_full)[name] = value
        # Let the strategy shard the whole EMA: load it into the model, copy
        # the model's shards into the EMA; the strategy then loads the
        # model's own weights (checkpoint['state_dict']) over it.
        self.shards.scatter_full(ema_full)
        self.pairs.copy_to_averaged()


class DDPShardedEMA(ShardedEMA):
    """The EMA of a replicated (DDP) model, sharded over its ranks
    (``SwitchEMAHook(shard=True)``; the layout and the gathers are
    :class:`~sema_mm.sharding.DDPShards`).

    Each rank averages its range of the averaged parameters; normalisation
    statistics (``buffers='average'``), which differ between the ranks
    between switches, are averaged whole by every rank, as under FSDP. A
    switch and a validation or test swap write each rank's range into the
    model, then make the model's weights whole again (one gather).
    :attr:`ema_model` holds this rank's ranges only (1-D tensors under the
    parameters' names); :meth:`full_state` gathers the whole EMA.

    Checkpoints have the form of an ordinary EMA (:class:`~sema_mm.ema.
    OwnEMA`): the same file as a replicated run's, which resumes with any
    number of ranks, with or without ``shard``, and loads into a single
    process. mmengine writes them on rank 0 only, where no collective can
    run, so :meth:`prepare_checkpoint`, called on every rank before the
    save, gathers the EMA for it (nothing when it equals the model, e.g.
    right after a switch).

    Args: as for :class:`ShardedEMA`, with ``shards`` a
    :class:`~sema_mm.sharding.DDPShards`.
    """

    shards: DDPShards

    def __init__(self, shards: DDPShards, model: nn.Module,
                 schedule: MomentumSchedule, averages_norm_stats: bool,
                 exclude: Sequence[str] = (),
                 device: Optional[torch.device] = None) -> None:
        super().__init__(shards, model, schedule, averages_norm_stats,
                         exclude, device)
        # What rank 0 saves while the EMA and (for "the EMA is the model")
        # the model are unchanged (see _state_mark).
        self._for_checkpoint: Optional[Tuple] = None

    def seed(self) -> None:
        self._for_checkpoint = None
        super().seed()

    def update(self) -> None:
        self._for_checkpoint = None
        super().update()

    def load(self, checkpoint: dict, strict: bool = True) -> bool:
        """Restore the EMA from a checkpoint of the replicated EMA's form,
        which must fit the model as for the replicated EMA
        (``strict_load``; see :func:`~sema_mm.ema.checkpoints.
        fitting_ema_state`): a misfit fails with ``strict``, else the EMA
        starts again from the resumed weights unless the checkpoint covers
        every averaged tensor."""
        self._for_checkpoint = None
        ema_state = checkpoint.get('ema_state_dict')
        if ema_state is not None and 'shards' not in ema_state:
            expected = full_ema_state(dict(self.model.state_dict()), {}, (),
                                      torch.tensor(0))
            if fitting_ema_state(expected, ema_state, self.pairs.names,
                                 strict) is None:
                return False
        return super().load(checkpoint, strict)

    def check_ranks(self, where: str) -> None:
        """The shards' layout and update counts (as :class:`ShardedEMA`),
        and the ranks' weights, whole on every rank, by checksum."""
        super().check_ranks(where)
        check_values_agree(self.shards.whole_params(), where, 'weights')

    def _state_mark(self, model_too: bool) -> Tuple:
        """What must not change for a prepared checkpoint to stay valid:
        the EMA (its update count) and, where the model stands for the
        EMA, the model's averaged tensors (their version counters)."""
        return (self.ema_model.num_steps,
                [t._version for t in self.pairs.source_tensors()]
                if model_too else None)

    @torch.no_grad()
    def _whole_ema(self, keep: bool = True,
                   device: Optional[torch.device] = None
                   ) -> Optional[Dict[str, Tensor]]:
        """The averaged tensors, whole, by name, on ``device`` (default:
        the EMA's); a collective. ``keep=False``: only send this rank's
        share (None)."""
        self._follow_buffers()
        ema = dict(zip(self.pairs.grouped_names,
                       self.pairs.averaged_tensors()))
        sharded = {n: ema[n] for n in self.shards.params}
        if not keep:
            self.shards.gather(sharded)
            return None
        whole = {
            n: self.shards.empty_whole(n, device or t.device)
            for n, t in sharded.items()
        }
        self.shards.gather(sharded,
                            {n: flat_view(t) for n, t in whole.items()})
        for n in self.pairs.names:
            if n not in whole:  # held whole by every rank
                whole[n] = ema[n].detach().to(device or ema[n].device,
                                              copy=True)
        return whole

    @torch.no_grad()
    def full_state(self) -> Dict[str, Tensor]:
        """The whole EMA on every rank (a collective, one gather): the
        model's state dict with the averaged tensors replaced by the
        EMA's (on the EMA's device)."""
        state = {
            k: v.detach().clone()
            for k, v in self.shards.gather_full().items()
        }
        state.update(self._whole_ema())
        return state

    def prepare_checkpoint(self, ema_is_model: bool) -> None:
        """Gather the EMA for the checkpoint that rank 0 saves next; a
        collective, on every rank. ``ema_is_model``: the EMA equals the
        model's weights (e.g. right after a switch), nothing to gather."""
        saves = get_rank() == 0
        ema = None if ema_is_model else self._whole_ema(
            keep=saves, device=torch.device('cpu'))
        self._for_checkpoint = (self._state_mark(ema_is_model),
                                ema) if saves else None

    def save(self, checkpoint: dict, ema_is_model: bool) -> None:
        prepared = self._for_checkpoint
        fresh = prepared is not None and \
            prepared[0] == self._state_mark(prepared[1] is None)
        if not (ema_is_model or fresh):
            raise RuntimeError(
                'SwitchEMAHook(shard=True): a checkpoint is being saved '
                'where the EMA was not gathered for it (mmengine saves on '
                'rank 0 only, where no collective can run). The hook '
                'gathers it where CheckpointHook saves; before calling '
                '`runner.save_checkpoint` yourself, call the hook\'s '
                '`prepare_checkpoint()` on every rank.')
        model_state = checkpoint['state_dict']
        names = self.pairs.names
        require(
            all(n in model_state for n in names),
            'shard=True: the checkpoint names the weights otherwise than the '
            'model does (e.g. through the DDP wrapper, as FlexibleRunner '
            "with DDPStrategy saves them); use the ordinary Runner.")
        ema_full = prepared[1] if not ema_is_model and \
            prepared[1] is not None else {n: model_state[n] for n in names}
        checkpoint['ema_state_dict'] = full_ema_state(
            model_state, ema_full, names,
            torch.tensor(self.ema_model.num_steps))
