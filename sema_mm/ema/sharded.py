"""SEMA for sharded models (FSDP1, FSDP2): every rank averages its own shard.

Under FSDP every rank holds a shard of each parameter (and of the optimizer
state); a deep copy of the model, which is what an ordinary EMA is, would
copy FSDP's machinery rather than the weights (and fails with
``use_orig_params=False``). :class:`ShardedEMA` instead allocates, on every
rank, one EMA tensor per local shard (same shape, device and dtype), pairs it
with the live shard (:mod:`sema_mm.sharding.fsdp1`), and runs the same fused
kernels as :class:`~sema_mm.ema.FusedEMA` over those pairs:

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
is switched in on none, and the switch distance is computed over the whole
model (:class:`ShardedPairs`).

Checkpoints follow the strategy's state-dict form (mmengine
``FSDPStrategy(state_dict_cfg=...)``, sema_mm's ``FSDP2Strategy``):

* ``'full'``: as for an ordinary EMA (:class:`~sema_mm.ema.OwnEMA`): the
  checkpoint's ``state_dict`` holds the whole EMA, ready to deploy or to
  ``load_from`` in a DDP or single-device config, and ``ema_state_dict``
  the model's own weights (``module.``-prefixed, with ``steps``), which
  resuming swaps back. Gathering and scattering use FSDP's own full state
  dict (FSDP2: ``torch.distributed.checkpoint``'s), so any sharding
  strategy and wrapping policy is handled. The
  normalisation statistics, which differ between ranks between switches
  and of which FSDP's full state dict keeps rank 0's, are saved for every
  rank (:data:`RANK_NORM_STATS`), so that resuming is exact.
* ``'local'`` (per-rank files): ``state_dict`` is FSDP's local (flat) state
  of the model's weights, and ``ema_state_dict`` holds this rank's EMA
  shards by parameter name (``shards``), ``steps`` and the world size.
  Resuming needs the same number of ranks and the same wrapping.
"""
import logging
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from mmengine.dist import all_gather, all_reduce, get_rank, get_world_size
from mmengine.logging import print_log
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

from ..sharding.fsdp1 import ShardedModel
from ..errors import require
from .averagers import Averager
from .fused_ema import FusedEMA, PythonStepCounter
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


class ShardedPairs(TensorPairs):
    """:class:`TensorPairs` over local shards: the relative switch distance
    is that of the whole model (sums of squares reduced over ranks).

    Attributes:
        sharded (bool): True; the cross-rank check compares the layout, not
            the values (see :mod:`sema_mm.switching.rank_check`).
        global_numels (Dict[str, int]): Elements of each whole tensor.
        num_updates (Callable[[], int]): The EMA's update counter.
    """
    sharded = True
    global_numels: Dict[str, int]
    num_updates: Callable[[], int]
    #: Called before every operation: puts the model's units back into
    #: their sharded state (see :meth:`ShardedModel.reshard`).
    reshard: Callable[[], None] = staticmethod(lambda: None)

    def lerp_(self, weight: float) -> None:
        self.reshard()
        super().lerp_(weight)

    def copy_to_averaged(self) -> None:
        self.reshard()
        super().copy_to_averaged()

    def copy_to_source(self) -> None:
        self.reshard()
        super().copy_to_source()

    def swap(self) -> None:
        self.reshard()
        super().swap()

    def relative_distance(self) -> float:
        """``||src - avg|| / ||src||`` over the whole model (global
        2-norms; one all-reduce of two float64 numbers)."""
        self.reshard()
        sums = self.distance_sums()
        all_reduce(sums, op='sum')
        return relative_norm(sums)


def norm_statistics(
        sharded: ShardedModel) -> Iterator[Tuple[str, str, _NormBase, str]]:
    """``(layer path, statistic name, layer, attribute)`` for the running
    mean and variance of every normalisation layer of ``sharded``."""
    for path, layer in sharded.norm_layers.items():
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


class ShardedEMAModel(PythonStepCounter, nn.Module):
    """The averaged model of :class:`ShardedEMA`: this rank's EMA shards.

    Args:
        module (nn.Module): The EMA tensors, as buffers under the
            parameters' names (see :func:`tensor_tree`).
        momentum (float): Weight of the new weights (mmengine convention).
        interval (int): Update every this many steps, momentum
            compensated as in :class:`~sema_mm.ema.FusedEMA`.
        warmup_iters (int): Momentum warm-up time constant (see
            :class:`~sema_mm.ema.FusedEMA`); 0 disables it.
    """

    def __init__(self, module: nn.Module, momentum: float, interval: int,
                 warmup_iters: int) -> None:
        super().__init__()
        require(warmup_iters >= 0,
                f'warmup_iters must be >= 0, got {warmup_iters}.')
        self.module = module
        self.momentum = momentum
        self.interval = interval
        self.warmup_iters = warmup_iters
        self.num_steps = 0
        self.register_buffer('steps', torch.tensor(0, dtype=torch.long))

    momentum_at = FusedEMA.momentum_at


#: Top-level key of a full checkpoint of a sharded run: one dict per rank
#: (in rank order) of that rank's normalisation statistics, ``model.<name>``
#: and, with ``buffers='average'``, ``ema.<name>``. Resuming with the same
#: number of ranks gives every rank its own back.
RANK_NORM_STATS = 'rank_norm_stats'


class ShardedEMA(Averager):
    """The EMA of this rank's shards of a sharded model (see the module
    docstring).

    Args:
        sharded (ShardedModel): The model's local shards.
        ema_cfg (dict): ``momentum``, ``interval`` (1), ``warmup_iters`` (0)
            as for :class:`~sema_mm.ema.FusedEMA`; ``device`` is refused.
        averages_norm_stats (bool): Also average normalisation statistics
            (``buffers='average'``).
        exclude (Sequence[str]): Names (parameters, buffers, modules) kept
            out of averaging and switching.
    """

    def __init__(self, sharded: ShardedModel, ema_cfg: dict,
                 averages_norm_stats: bool,
                 exclude: Sequence[str] = ()) -> None:
        cfg = dict(ema_cfg)
        require(
            cfg.pop('device', None) is None,
            'device is not supported for a sharded (FSDP) model: the EMA is '
            'kept beside each rank\'s shard, 1 / (number of ranks) of the '
            'model, on its device. Remove `device` from SwitchEMAHook.')
        momentum = cfg.pop('momentum')
        interval = cfg.pop('interval', 1)
        warmup_iters = cfg.pop('warmup_iters', 0)
        require(
            not cfg,
            f'unsupported options for a sharded (FSDP) model: {sorted(cfg)}.')
        self.sharded = sharded
        exclude = tuple(exclude)
        src = {
            n: t
            for n, t in sharded.params.items()
            if t.is_floating_point() and not name_matches(n, exclude)
        }
        norm_paths = []
        # (name, layer, statistic, the buffer paired now)
        self._norm_stats = []
        if averages_norm_stats:
            for path, name, layer, stat in norm_statistics(sharded):
                if name_matches(path, exclude):
                    continue
                if path not in norm_paths:
                    norm_paths.append(path)
                buffer = getattr(layer, stat)
                self._norm_stats.append((name, layer, stat, buffer))
                src[name] = buffer.detach()
        names = list(src)
        self._dtensor_params = [
            sharded.dtensors[n] for n in names if n in sharded.dtensors
        ]
        ema = {n: t.detach().clone() for n, t in src.items()}
        self.ema_model = ShardedEMAModel(
            tensor_tree(ema, norm_paths), momentum, interval, warmup_iters)
        self._sources = src
        self.pairs = ShardedPairs(self.ema_model.module,
                                  tensor_tree(dict(src)), names)
        self.pairs.global_numels = {
            n: sharded.global_numels.get(n, src[n].numel())
            for n in names
        }
        self.pairs.num_updates = lambda: self.ema_model.num_steps
        self.pairs.reshard = sharded.reshard
        # Module names as the norm-statistics policies see them in
        # ``forward_model`` (with FSDP1's wrapper parts).
        raw = [
            r for name, raws in sharded.module_names.items()
            if name and name_matches(name, exclude) for r in raws
        ]
        self.excluded = exclude + tuple(r for r in raw if r not in exclude)
        self.forward_model = (sharded.root
                              if sharded.kind == 'fsdp1' else None)

    def _follow_buffers(self) -> None:
        """Pair the model's current normalisation buffers: FSDP1 replaces
        the buffer tensors (casting them to their device and dtype) at its
        lazy initialisation, in the first forward, after the pairs were
        built, and a cast of a buffer's ``.data`` keeps the tensor but not
        its storage. The pairs object is refilled in place (the hook's state
        tracker holds it). A few identity checks when nothing changed."""
        changed = False
        for i, (name, layer, stat, buffer) in enumerate(self._norm_stats):
            current = getattr(layer, stat)
            if current is not buffer or \
                    current.data_ptr() != self._sources[name].data_ptr():
                self._norm_stats[i] = (name, layer, stat, current)
                self._sources[name] = current.detach()
                changed = True
        if changed:
            TensorPairs.__init__(self.pairs, self.ema_model.module,
                                 tensor_tree(dict(self._sources)),
                                 list(self._sources))

    def watched_tensors(self) -> List[Tensor]:
        """The local shards and, for DTensor parameters, the parameters
        themselves: an in-place operation on a DTensor (an optimizer step)
        bumps the version counter of the DTensor, not of its local
        tensor."""
        return self.pairs.source_tensors() + self._dtensor_params

    # ------------------------------------------------------------ averaging
    def seed(self) -> None:
        self._follow_buffers()
        self.pairs.copy_to_averaged()
        self.ema_model.num_steps = 1

    def update(self) -> None:
        self._follow_buffers()
        ema = self.ema_model
        if ema.num_steps == 0:
            self.pairs.copy_to_averaged()
        elif ema.num_steps % ema.interval == 0:
            m = ema.momentum_at(ema.num_steps)
            if ema.interval > 1:
                m = 1 - (1 - m)**ema.interval
            self.pairs.lerp_(m)
        ema.num_steps += 1

    def warmup_momentum_at(self) -> Optional[Callable[[int], float]]:
        return (self.ema_model.momentum_at
                if self.ema_model.warmup_iters else None)

    def agree(self, ok: bool) -> bool:
        """``ok`` on every rank (one all-reduce): each rank holds a
        different piece of the EMA, so all skip an update, or a switch,
        together."""
        if get_world_size() == 1:
            return ok
        flag = torch.tensor([int(ok)], dtype=torch.int32)
        all_reduce(flag, op='min')
        return bool(flag.item())

    # ---------------------------------------------------------- gathering
    @torch.no_grad()
    def full_state(self) -> Dict[str, Tensor]:
        """The whole EMA on every rank (a collective): the model's full
        state dict with the averaged tensors replaced by the EMA's. For
        inspection and tests; checkpoints use the strategy's form."""
        self._follow_buffers()
        self.pairs.swap()
        try:  # cloned before swapping back: buffers are not copies
            return {
                k: v.detach().clone()
                for k, v in self.sharded.full_state_dict().items()
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
            for _, name, layer, stat in norm_statistics(self.sharded)
        }
        ema = dict(self.ema_model.module.named_buffers())
        for name, *_ in self._norm_stats:
            stats['ema.' + name] = ema[name]
        return stats

    def _own_norm_stats(self, checkpoint: dict) -> Dict[str, Tensor]:
        """This rank's statistics from a full checkpoint (see
        :data:`RANK_NORM_STATS`), those this run has; none, with a warning,
        when the checkpoint has another number of ranks (every rank then
        starts from rank 0's)."""
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
        form, _ = self.sharded.state_dict_form()
        steps = torch.tensor(self.ema_model.num_steps)
        if form == 'local':
            tensors = (self.pairs.source_tensors()
                       if ema_is_model else self.pairs.averaged_tensors())
            checkpoint['ema_state_dict'] = dict(
                steps=steps,
                world_size=get_world_size(),
                rank=get_rank(),
                shards={
                    n: t.detach().clone()
                    for n, t in zip(self.pairs.grouped_names, tensors)
                })
            return
        # Full: the EMA in `state_dict` (as OwnEMA), gathered by FSDP.
        model_state = checkpoint['state_dict']
        if ema_is_model:
            ema_full = model_state
        else:
            self.pairs.swap()
            try:  # cloned before swapping back: buffers are not copies
                ema_full = {
                    k: v.detach().clone()
                    for k, v in self.sharded.checkpoint_state_dict().items()
                }
            finally:
                self.pairs.swap()
        # Normalisation statistics are not sharded and differ between the
        # ranks between switches; FSDP's full state dict has rank 0's.
        per_rank = gather_per_rank(self._norm_stats_here())
        if not model_state:
            return  # rank0_only: this rank saves nothing
        checkpoint[RANK_NORM_STATS] = per_rank
        ema_state = {'module.' + k: v for k, v in model_state.items()}
        ema_state['steps'] = steps
        for name in self.pairs.names:
            ema_state['module.' + name] = model_state[name]
            model_state[name] = ema_full[name]
        checkpoint['ema_state_dict'] = ema_state

    def load(self, checkpoint: dict) -> bool:
        self._follow_buffers()
        ema_state = checkpoint.get('ema_state_dict')
        if ema_state is None:
            print_log(
                'SwitchEMAHook: the resumed checkpoint has no '
                '`ema_state_dict`; the EMA starts again from the resumed '
                'weights.', logger='current', level=logging.WARNING)
            return False
        if 'shards' in ema_state:
            self._load_local(ema_state)
        else:
            self._load_full(checkpoint)
        self.ema_model.num_steps = int(ema_state['steps'])
        return True

    def _load_local(self, ema_state: dict) -> None:
        form, _ = self.sharded.state_dict_form()
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
        form, _ = self.sharded.state_dict_form()
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
        ema_full = dict(model_state)
        for name in self.pairs.names:
            ema_full[name] = model_state[name]
            model_state[name] = ema_state['module.' + name]
        for key, value in self._own_norm_stats(checkpoint).items():
            part, _, name = key.partition('.')
            (model_state if part == 'model' else ema_full)[name] = value
        # Let FSDP shard the whole EMA: load it into the model, copy the
        # model's shards into the EMA; the strategy then loads the model's
        # own weights (checkpoint['state_dict']) over it.
        self.sharded.load_full_state_dict(ema_full)
        self.pairs.copy_to_averaged()
