"""The local shards of a sharded model: FSDP1 and FSDP2 (DTensor).

:func:`find_sharded` looks at a model once and, when its parameters are
sharded, returns a :class:`ShardedModel`: for every original parameter (by
its ordinary, unwrapped name) the tensor that holds *this rank's* part of it,
a live alias that sees every optimizer step, and the facts sema_mm needs
about the layout. It is the only place that reads FSDP internals:

* **FSDP1** (``FullyShardedDataParallel``, mmengine's
  ``MMFullyShardedDataParallel``). With ``use_orig_params=True`` (mmengine's
  default) each original parameter is, between iterations, a 1-D view of its
  part of the rank's flat shard (possibly empty): it is used as is. With
  ``use_orig_params=False`` only the ``FlatParameter`` is registered; the
  per-parameter parts are sliced from it with the flat parameter's shard
  metadata (``_fqns``, ``_shard_param_infos``, ``_numels``; private torch
  attributes, checked when found, with a message naming the torch release
  if they are missing). Padding is never part of any slice.
* **FSDP2** (``fully_shard``) and any other model whose parameters are
  DTensors: the local shard is ``p.to_local()``.

Normalisation statistics (BatchNorm running mean and variance) are never
sharded: every rank keeps its own.

:class:`ShardedModel` also gathers and scatters whole state dicts for
``'full'`` checkpoints (FSDP1 through its ``FULL_STATE_DICT`` settings,
FSDP2 through ``torch.distributed.checkpoint``'s state-dict functions);
an FSDP2 strategy says which form its checkpoints take through the model
attribute :data:`STATE_DICT_FORM`.

All local views are taken when the model is in its sharded state (between
iterations, which is when hooks run): FSDP1 keeps the local shard in one
storage for the life of the wrapper (``FlatParameter._local_shard`` is the
tensor created when wrapping), FSDP2 in ``_sharded_param_data``.

Two fixes to mmengine 0.10.7's ``FSDPStrategy``, applied when this module is
imported (i.e. with sema_mm), each only where it is needed:

* :func:`fix_fsdp_optim_loading`: its ``load_optim_state_dict`` passes
  ``(state_dict, model, optimizer)`` to
  ``FSDP.optim_state_dict_to_load``, torch 2.0's order; from torch 2.1 on
  the function takes ``(model, optim, optim_state_dict)``, so every FSDP
  resume failed (``unhashable type: 'dict'``). Patched when torch's
  signature starts with ``model``.
* :func:`allow_sharded_tensor_checkpoints`: FSDP1's local state dicts hold
  ``ShardedTensor`` objects, which sema_mm's safe checkpoint loading
  (weights-only) refused. Their classes (torch's own data classes, whose
  unpickling only validates ranks and shapes) are added to torch's safe
  globals (torch >= 2.4); on older torch the restricted unpickler of
  :mod:`sema_mm.compat.checkpoint_safety` allows the same list
  (:func:`sharded_tensor_globals`).

It also registers torch's ``size_based_auto_wrap_policy`` in mmengine's
``FUNCTIONS`` (:func:`register_wrap_policies`) for configs.
"""
import inspect
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

try:
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP1
    from torch.distributed.fsdp import StateDictType
except ImportError:  # pragma: no cover - torch without distributed
    FSDP1 = None
    StateDictType = None
try:
    from torch.distributed.fsdp import FSDPModule
except ImportError:  # pragma: no cover - torch < 2.6
    FSDPModule = None
try:
    from torch.distributed.tensor import DTensor
except ImportError:  # pragma: no cover - torch < 2.4
    try:
        from torch.distributed._tensor import DTensor
    except ImportError:
        DTensor = None

#: The model attribute through which an FSDP2 strategy tells the sharded
#: EMA how its checkpoints hold the model: ``'local'`` (per-rank files, the
#: default) or ``'full'`` (rank 0 writes the whole model), see
#: :class:`sema_mm.FSDP2Strategy`.
STATE_DICT_FORM = 'sema_mm_state_dict_form'
#: Module names that FSDP1, activation checkpointing and ``torch.compile``
#: insert between a module and its children.
WRAPPER_PARTS = frozenset(
    ('_fsdp_wrapped_module', '_checkpoint_wrapped_module', '_orig_mod'))
FLAT_PARAM = '_flat_param'


def clean_name(name: str) -> str:
    """``name`` without the wrapper parts (:data:`WRAPPER_PARTS`), i.e. the
    name in the unwrapped model."""
    return '.'.join(p for p in name.split('.') if p not in WRAPPER_PARTS)


class ShardedModel(NamedTuple):
    """This rank's view of a sharded model.

    Attributes:
        kind (str): ``'fsdp1'`` or ``'dtensor'`` (FSDP2 and other DTensor
            parameters).
        root (nn.Module): The module to run and to take state dicts of: the
            FSDP1 root wrapper, or the FSDP2 model itself.
        params (Dict[str, Tensor]): Unwrapped parameter name -> this rank's
            part of it (a detached alias of the live storage; empty when the
            rank holds none of it).
        global_numels (Dict[str, int]): Unwrapped parameter name -> number
            of elements of the whole parameter.
        norm_layers (Dict[str, _NormBase]): Unwrapped module name -> the
            normalisation layers with running statistics (not sharded).
        module_names (Dict[str, List[str]]): Unwrapped module name -> its
            names in ``root``'s ``named_modules`` (with wrapper parts).
        dtensors (Dict[str, Tensor]): For ``'dtensor'``: parameter name ->
            the DTensor parameter (mesh, placements, global shape).
    """
    kind: str
    root: nn.Module
    params: Dict[str, Tensor]
    global_numels: Dict[str, int]
    norm_layers: Dict[str, _NormBase]
    module_names: Dict[str, List[str]]
    dtensors: Dict[str, Tensor]

    def state_dict_form(self) -> Tuple[str, bool]:
        """How checkpoints hold the model: ``('full', rank0_only)`` for
        FSDP1 with ``FULL_STATE_DICT`` (mmengine's ``state_dict_cfg=
        'full'``) and for FSDP2 under a strategy that says ``'full'``
        (:data:`STATE_DICT_FORM`), else ``('local', False)``: per rank
        (FSDP1 ``LOCAL_STATE_DICT`` / ``SHARDED_STATE_DICT``, FSDP2)."""
        if self.kind != 'fsdp1':
            if getattr(self.root, STATE_DICT_FORM, 'local') == 'full':
                return 'full', True
            return 'local', False
        settings = FSDP1.get_state_dict_type(self.root)
        if settings.state_dict_type == StateDictType.FULL_STATE_DICT:
            return 'full', bool(
                getattr(settings.state_dict_config, 'rank0_only', False))
        return 'local', False

    def reshard(self) -> None:
        """Put every FSDP unit back into its sharded state.

        A forward pass without a backward (validation, test) leaves the
        root unit's parameters gathered (FSDP1 and FSDP2 keep them after
        forward, expecting a backward): a copy into the local shard would
        not be seen by the next forward, which reuses the gathered values
        without gathering again (with FSDP1 even after the root's
        parameters point back at the shard). Called before every
        operation on the shards; a check per unit when all are sharded.
        """
        if self.kind == 'fsdp1':
            from torch.distributed.fsdp import _runtime_utils
            for unit in FSDP1.fsdp_modules(self.root):
                handle = getattr(unit, '_handle', None)
                if handle is None or not handle.uses_sharded_strategy or \
                        not hasattr(handle.flat_param, '_full_param_padded'):
                    continue  # not sharded, or never gathered yet
                # After a forward without backward the root points at its
                # shard again but keeps the gathered copy, which the next
                # forward reuses without gathering: free it too.
                gathered = handle._get_padded_unsharded_flat_param()
                if not handle.is_sharded(handle.flat_param) or \
                        gathered.untyped_storage().size() > 0:
                    _runtime_utils._reshard(unit, handle, True)
            return
        if FSDPModule is None:
            return
        for module in self.root.modules():
            if isinstance(module, FSDPModule):
                module.reshard()

    @torch.no_grad()
    def checkpoint_state_dict(self) -> Dict[str, Tensor]:
        """The whole model's state dict as a ``'full'`` checkpoint holds it
        (on rank 0; other ranks may get an empty dict); a collective."""
        if self.kind == 'fsdp1':  # the strategy's FULL_STATE_DICT settings
            return self.root.state_dict()
        return self.full_state_dict()

    @torch.no_grad()
    def load_full_state_dict(self, state: Dict[str, Tensor]) -> None:
        """Load a whole (unsharded) state dict, present on every rank, into
        the shards; entries the model lacks are ignored. A collective."""
        if self.kind == 'fsdp1':  # the strategy's FULL_STATE_DICT settings
            self.root.load_state_dict(state, strict=False)
            return
        from torch.distributed.checkpoint.state_dict import (
            set_model_state_dict,
        )
        set_model_state_dict(self.root, state,
                             options=full_state_options(strict=False))

    @torch.no_grad()
    def full_state_dict(self) -> Dict[str, Tensor]:
        """The whole model's state dict (unwrapped names, full tensors) on
        every rank; a collective: call it on all ranks."""
        if self.kind == 'fsdp1':
            from torch.distributed.fsdp import FullStateDictConfig
            with FSDP1.state_dict_type(
                    self.root, StateDictType.FULL_STATE_DICT,
                    FullStateDictConfig(offload_to_cpu=False,
                                        rank0_only=False)):
                return {
                    clean_name(k): v
                    for k, v in self.root.state_dict().items()
                }
        state = {}
        for name, tensor in self.root.state_dict().items():
            if DTensor is not None and isinstance(tensor, DTensor):
                tensor = tensor.full_tensor()
            state[clean_name(name)] = tensor.detach().clone()
        return state


def full_state_options(**kwargs):
    """``torch.distributed.checkpoint``'s ``StateDictOptions`` for whole
    (unsharded) state dicts."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions
    return StateDictOptions(full_state_dict=True, **kwargs)


def _require_attrs(obj, names: Tuple[str, ...], what: str) -> None:
    missing = [n for n in names if not hasattr(obj, n)]
    if missing:
        raise RuntimeError(
            f'SwitchEMAHook: this torch ({torch.__version__}) has no '
            f'{", ".join(missing)} on the {what}, which the sharded EMA '
            'reads to find the local shard of each parameter with FSDP1 and '
            'use_orig_params=False. Use use_orig_params=True (mmengine\'s '
            'default).')


def _fsdp1_flat_parts(name: str, flat: Tensor) -> Tuple[Dict[str, Tensor],
                                                        Dict[str, int]]:
    """Per-parameter parts of this rank's shard of a ``FlatParameter``
    registered as ``name`` (use_orig_params=False)."""
    _require_attrs(flat, ('_fqns', '_shard_param_infos', '_numels'),
                   'FlatParameter')
    prefix = clean_name(name)[:-len(FLAT_PARAM)]
    local = flat.detach()  # the sharded flat parameter (sharded state)
    parts, numels = {}, {}
    for fqn, info, numel in zip(flat._fqns, flat._shard_param_infos,
                                flat._numels):
        if info.in_shard:
            start = info.offset_in_shard
            part = local[start:start + info.numel_in_shard]
        else:
            part = local[:0]
        parts[prefix + fqn] = part
        numels[prefix + fqn] = int(numel)
    return parts, numels


def _global_numels_fsdp1(root: nn.Module) -> Dict[str, int]:
    """Whole-parameter sizes of an FSDP1 model (use_orig_params=True)."""
    numels = {}
    for unit in FSDP1.fsdp_modules(root):
        handle = getattr(unit, '_handle', None)
        flat = getattr(handle, 'flat_param', None)
        if flat is None or not hasattr(flat, '_fqns'):
            continue
        prefix = ''
        for raw, module in root.named_modules():
            if module is unit:
                prefix = clean_name(raw)
                break
        for fqn, numel in zip(flat._fqns, flat._numels):
            numels[f'{prefix}.{fqn}' if prefix else fqn] = int(numel)
    return numels


def find_sharded(model: nn.Module) -> Optional[ShardedModel]:
    """The :class:`ShardedModel` of ``model`` (an FSDP1 root wrapper, or a
    model with DTensor parameters), or None when nothing in it is sharded.
    """
    fsdp1 = FSDP1 is not None and (isinstance(model, FSDP1) or any(
        isinstance(m, FSDP1) for m in model.modules()))
    dtensors = {} if DTensor is None else {
        clean_name(n): p
        for n, p in model.named_parameters() if isinstance(p, DTensor)
    }
    if not fsdp1 and not dtensors:
        return None
    params: Dict[str, Tensor] = {}
    numels: Dict[str, int] = {}
    with torch.no_grad():
        for raw, p in model.named_parameters():
            name = clean_name(raw)
            if getattr(p, '_is_flat_param', False):
                parts, part_numels = _fsdp1_flat_parts(raw, p)
                params.update(parts)
                numels.update(part_numels)
            elif name in dtensors:
                params[name] = p.to_local().detach()
                numels[name] = p.numel()
            else:  # FSDP1 use_orig_params view, or an unsharded parameter
                params[name] = p.detach()
                numels[name] = p.numel()
    if fsdp1:
        numels.update(_global_numels_fsdp1(model))
    norm_layers: Dict[str, _NormBase] = {}
    module_names: Dict[str, List[str]] = {}
    for raw, module in model.named_modules():
        name = clean_name(raw)
        module_names.setdefault(name, []).append(raw)
        if isinstance(module, _NormBase) and module.track_running_stats \
                and module.running_mean is not None:
            norm_layers[name] = module
    return ShardedModel('fsdp1' if fsdp1 else 'dtensor', model, params,
                        numels, norm_layers, module_names, dtensors)


def fix_fsdp_optim_loading() -> bool:
    """Make mmengine's ``FSDPStrategy.load_optim_state_dict`` call
    ``FSDP.optim_state_dict_to_load`` with torch's argument order (see the
    module docstring); whether it was patched."""
    if FSDP1 is None:
        return False
    try:
        from mmengine._strategy import FSDPStrategy
    except ImportError:  # pragma: no cover - mmengine without FSDP
        return False
    params = list(
        inspect.signature(FSDP1.optim_state_dict_to_load).parameters)
    current = FSDPStrategy.load_optim_state_dict
    if params[:1] != ['model'] or getattr(current, 'sema_mm_fixed', False):
        return False

    def load_optim_state_dict(self, state_dict: dict) -> None:
        """Load an optimizer state dict saved by :meth:`optim_state_dict`
        (sema_mm: torch >= 2.1 argument order)."""
        optim_state_dict = FSDP1.optim_state_dict_to_load(
            self.model, self.optim_wrapper.optimizer, state_dict)
        self.optim_wrapper.load_state_dict(optim_state_dict)

    load_optim_state_dict.sema_mm_fixed = True
    FSDPStrategy.load_optim_state_dict = load_optim_state_dict
    return True


def sharded_tensor_globals() -> List:
    """The classes a pickled FSDP1 local state dict (``ShardedTensor``)
    names."""
    try:
        from torch.distributed._shard.metadata import ShardMetadata
        from torch.distributed._shard.sharded_tensor import api, metadata
        from torch.distributed._shard.sharded_tensor.shard import Shard
        from torch.distributed._shard.sharding_spec import ChunkShardingSpec
        from torch.distributed.remote_device import _remote_device
    except ImportError:  # pragma: no cover - torch without distributed
        return []
    return [
        api.ShardedTensor, api.ShardedTensorBase,
        api.ShardedTensor.ProcessGroupState, metadata.ShardedTensorMetadata,
        metadata.TensorProperties, metadata.MEM_FORMAT_ENCODING, Shard,
        ShardMetadata, ChunkShardingSpec, _remote_device
    ]


def allow_sharded_tensor_checkpoints() -> bool:
    """Let weights-only loading read FSDP1 local state dicts (torch >= 2.4);
    whether it could."""
    if not hasattr(torch.serialization, 'add_safe_globals'):
        return False
    globals_ = sharded_tensor_globals()
    if globals_:
        torch.serialization.add_safe_globals(globals_)
    return bool(globals_)



def register_wrap_policies() -> None:
    """Register torch's ``size_based_auto_wrap_policy`` in mmengine's
    ``FUNCTIONS`` (if not already there), so that configs can write
    ``auto_wrap_policy=dict(type='size_based_auto_wrap_policy',
    min_num_params=...)`` for ``MMFullyShardedDataParallel``."""
    try:
        from mmengine.registry import FUNCTIONS
        from torch.distributed.fsdp.wrap import size_based_auto_wrap_policy
    except ImportError:  # pragma: no cover
        return
    if 'size_based_auto_wrap_policy' not in FUNCTIONS.module_dict:
        FUNCTIONS.register_module(module=size_based_auto_wrap_policy)

