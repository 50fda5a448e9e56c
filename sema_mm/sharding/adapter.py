"""What the sharded EMA needs of a sharded model: the adapter protocol.

A sharded EMA keeps, on every rank, the EMA of *this rank's part* of the
model and runs the same fused kernels as an ordinary EMA over (EMA, local
part) pairs. Everything it needs to know about how the model is sharded
goes through one :class:`ShardAdapter`, with one implementation per way of
sharding (:func:`~sema_mm.sharding.find_sharded` picks it):

* :class:`~sema_mm.sharding.fsdp1.FSDP1Shards`: ``FullyShardedDataParallel``
  (mmengine's ``FSDPStrategy``);
* :class:`~sema_mm.sharding.fsdp2.DTensorShards`: FSDP2 (``fully_shard``,
  :class:`~sema_mm.sharding.fsdp2_strategy.FSDP2Strategy`) and any other
  model whose parameters are DTensors.

The protocol, in the order the EMA uses it:

* **Local tensors** (:attr:`ShardAdapter.params`): unwrapped parameter name
  -> this rank's part of it, a live alias of the storage the optimizer
  updates (empty where the rank holds none of the parameter), with the
  whole parameter's size (:attr:`ShardAdapter.global_numels`), the
  normalisation layers (never sharded) and the module names as the model's
  forward sees them. Updates and seeding are local ``_foreach`` kernels
  over these.
* **Before an operation** (:meth:`ShardAdapter.prepare`): put the model in
  the state in which the local tensors are the live weights (FSDP: reshard
  units a forward without backward left gathered).
* **After the model's local tensors were written** (a switch, the swap for
  validation; :meth:`ShardAdapter.publish`): make every rank's forward see
  the written values. FSDP: nothing (its forward gathers the shards).
* **Checkpoint form** (:meth:`ShardAdapter.checkpoint_form`): ``'local'``
  (per-rank files) or ``'full'`` (the whole model, possibly written by rank
  0 only), as the strategy saves the model.
* **Gather / scatter of full tensors** (:meth:`ShardAdapter.gather_full`,
  :meth:`ShardAdapter.checkpoint_state_dict`,
  :meth:`ShardAdapter.scatter_full`): the whole model's state dict on every
  rank, as a ``'full'`` checkpoint holds it, and loading a whole state dict
  into the local parts; all collectives.
* **Coverage** (:meth:`ShardAdapter.covers`): whether the ranks' local
  sizes of a tensor, summed, account for the whole of it exactly (no part
  missing or counted twice); the cross-rank check
  (``check_ranks=True``) uses it.
* **Forward module** (:attr:`ShardAdapter.forward_module`): the module to
  run forward passes through (FSDP1's root wrapper) when it is not the
  unwrapped model, e.g. to re-estimate normalisation statistics.
* **Watched tensors** (:meth:`ShardAdapter.watched_for`): tensors besides
  the local parts whose version counters show an optimizer step.

A DDP-sharded EMA (every rank keeps the EMA of one slice of the flattened
averaged tensors, the model itself replicated) fits the same protocol: its
local tensors are views of this rank's slice of each parameter, ``prepare``
does nothing, ``publish`` all-gathers the slices so that every rank holds
the whole switched (or swapped) model, ``gather_full`` / ``scatter_full``
gather and slice the flattened tensors, the checkpoint form is the
strategy's, and ``covers`` asks for exactly one copy of every tensor.
"""
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

try:
    from torch.distributed.tensor import DTensor
except ImportError:  # pragma: no cover - torch < 2.4
    try:
        from torch.distributed._tensor import DTensor
    except ImportError:
        DTensor = None

#: Module names that FSDP1, activation checkpointing and ``torch.compile``
#: insert between a module and its children.
WRAPPER_PARTS = frozenset(
    ('_fsdp_wrapped_module', '_checkpoint_wrapped_module', '_orig_mod'))


def clean_name(name: str) -> str:
    """``name`` without the wrapper parts (:data:`WRAPPER_PARTS`), i.e. the
    name in the unwrapped model."""
    return '.'.join(p for p in name.split('.') if p not in WRAPPER_PARTS)


def dtensor_params(model: nn.Module) -> Dict[str, Tensor]:
    """Unwrapped name -> parameter, for the DTensor parameters of
    ``model``."""
    if DTensor is None:
        return {}
    return {
        clean_name(n): p
        for n, p in model.named_parameters() if isinstance(p, DTensor)
    }


class ShardAdapter:
    """This rank's view of a sharded model (see the module docstring).

    Subclasses implement the strategy-specific methods; the local view is
    taken once, when the model is in its sharded state (between iterations,
    which is when hooks run).

    Args:
        root (nn.Module): The module to take state dicts of (the FSDP1 root
            wrapper, or the FSDP2 model itself).

    Attributes:
        name (str): The way of sharding, for messages.
        root (nn.Module): As above.
        params (Dict[str, Tensor]): Unwrapped parameter name -> this rank's
            part of it (a detached alias of the live storage; empty when the
            rank holds none of it).
        global_numels (Dict[str, int]): Unwrapped parameter name -> number
            of elements of the whole parameter.
        norm_layers (Dict[str, _NormBase]): Unwrapped module name -> the
            normalisation layers with running statistics (not sharded).
        module_names (Dict[str, List[str]]): Unwrapped module name -> its
            names in ``root``'s ``named_modules`` (with wrapper parts).
        dtensors (Dict[str, Tensor]): Parameter name -> the DTensor
            parameter (mesh, placements, global shape), for DTensor
            parameters.
        forward_module (nn.Module, optional): The module to run forward
            passes through when it is not the unwrapped model.
    """
    name = ''
    forward_module: Optional[nn.Module] = None

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self.dtensors = dtensor_params(root)
        self.params: Dict[str, Tensor] = {}
        self.global_numels: Dict[str, int] = {}
        with torch.no_grad():
            for raw, p in root.named_parameters():
                parts, numels = self.local_parts(raw, p)
                self.params.update(parts)
                self.global_numels.update(numels)
        self.norm_layers: Dict[str, _NormBase] = {}
        self.module_names: Dict[str, List[str]] = {}
        for raw, module in root.named_modules():
            name = clean_name(raw)
            self.module_names.setdefault(name, []).append(raw)
            if isinstance(module, _NormBase) and module.track_running_stats \
                    and module.running_mean is not None:
                self.norm_layers[name] = module

    def local_parts(self, raw: str,
                    param: Tensor) -> Tuple[Dict[str, Tensor], Dict[str, int]]:
        """This rank's part(s) of the parameter registered as ``raw``, and
        the whole sizes, by unwrapped name: a DTensor's local tensor, or the
        parameter itself (a view of the local shard, or unsharded)."""
        name = clean_name(raw)
        local = param.to_local() if name in self.dtensors else param
        return {name: local.detach()}, {name: param.numel()}

    def watched_for(self, names: List[str]) -> List[Tensor]:
        """Tensors besides the local parts whose version counters show an
        in-place change of the parameters ``names``: a DTensor parameter
        (an optimizer step bumps its counter, not its local tensor's)."""
        return [self.dtensors[n] for n in names if n in self.dtensors]

    def checkpoint_form(self) -> Tuple[str, bool]:
        """How checkpoints hold the model: ``('full', rank0_only)`` or
        ``('local', False)`` (per-rank files)."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Put the model in the state in which the local parts are the live
        weights; called before every operation on them."""

    def publish(self) -> None:
        """Make the values just written into the model's local parts the
        ones every rank's forward sees; called after a switch and a swap."""

    def gather_full(self) -> Dict[str, Tensor]:
        """The whole model's state dict (unwrapped names, full tensors) on
        every rank; a collective."""
        raise NotImplementedError

    def checkpoint_state_dict(self) -> Dict[str, Tensor]:
        """The whole model's state dict as a ``'full'`` checkpoint holds it
        (on rank 0; other ranks may get an empty dict); a collective."""
        return self.gather_full()

    def scatter_full(self, state: Dict[str, Tensor]) -> None:
        """Load a whole (unsharded) state dict, present on every rank, into
        the local parts; entries the model lacks are ignored. A
        collective."""
        raise NotImplementedError

    def covers(self, total: int, whole: int) -> bool:
        """Whether ``total``, the ranks' local sizes of one tensor summed,
        accounts for its ``whole`` size: a whole number of copies, at least
        one (several with replicated shards, e.g. ``HYBRID_SHARD``)."""
        return not whole or (total > 0 and total % whole == 0)
