"""FSDP1 (``FullyShardedDataParallel``, mmengine's ``FSDPStrategy``): the
sharded EMA's adapter (:class:`FSDP1Shards`, see
:mod:`sema_mm.sharding.adapter`).

With ``use_orig_params=True`` (mmengine's default) each original parameter
is, between iterations, a 1-D view of its part of the rank's flat shard
(possibly empty): it is used as is. With ``use_orig_params=False`` only the
``FlatParameter`` is registered; the per-parameter parts are sliced from it
with the flat parameter's shard metadata (``_fqns``, ``_shard_param_infos``,
``_numels``; private torch attributes, checked when found, with a message
naming the torch release if they are missing). Padding is never part of any
slice. FSDP1 keeps the local shard in one storage for the life of the
wrapper (``FlatParameter._local_shard`` is the tensor created when
wrapping), so the views stay live.

Full state dicts go through FSDP1's ``FULL_STATE_DICT`` settings; the
checkpoint form is the one the strategy set on the root
(``FSDPStrategy(state_dict_cfg=...)``).

:func:`register_wrap_policies` registers torch's
``size_based_auto_wrap_policy`` in mmengine's ``FUNCTIONS`` for configs.
"""
from typing import Dict, Tuple

import torch
from torch import Tensor, nn

from .adapter import ShardAdapter, clean_name

try:
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP1
    from torch.distributed.fsdp import StateDictType
except ImportError:  # pragma: no cover - torch without distributed
    FSDP1 = None
    StateDictType = None

FLAT_PARAM = '_flat_param'


def is_fsdp1(model: nn.Module) -> bool:
    """Whether ``model`` is, or holds, an FSDP1 wrapper."""
    return FSDP1 is not None and (isinstance(model, FSDP1) or any(
        isinstance(m, FSDP1) for m in model.modules()))


def _require_attrs(obj, names: Tuple[str, ...], what: str) -> None:
    missing = [n for n in names if not hasattr(obj, n)]
    if missing:
        raise RuntimeError(
            f'SwitchEMAHook: this torch ({torch.__version__}) has no '
            f'{", ".join(missing)} on the {what}, which the sharded EMA '
            'reads to find the local shard of each parameter with FSDP1 and '
            'use_orig_params=False. Use use_orig_params=True (mmengine\'s '
            'default).')


def _flat_parts(name: str, flat: Tensor) -> Tuple[Dict[str, Tensor],
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


def _global_numels(root: nn.Module) -> Dict[str, int]:
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


class FSDP1Shards(ShardAdapter):
    """The local shards of an FSDP1 model.

    Args:
        root (nn.Module): The FSDP1 root wrapper (or a model holding FSDP1
            units).
    """
    name = 'fsdp1'

    def __init__(self, root: nn.Module) -> None:
        super().__init__(root)
        self.global_numels.update(_global_numels(root))
        # Forward passes (e.g. re-estimating normalisation statistics) go
        # through the wrapper, which gathers the shards.
        self.forward_module = root

    def local_parts(self, raw: str,
                    param: Tensor) -> Tuple[Dict[str, Tensor], Dict[str, int]]:
        if getattr(param, '_is_flat_param', False):
            return _flat_parts(raw, param)
        return super().local_parts(raw, param)

    def checkpoint_form(self) -> Tuple[str, bool]:
        """``('full', rank0_only)`` with ``FULL_STATE_DICT`` (mmengine's
        ``state_dict_cfg='full'``), else ``('local', False)``
        (``LOCAL_STATE_DICT`` / ``SHARDED_STATE_DICT``)."""
        settings = FSDP1.get_state_dict_type(self.root)
        if settings.state_dict_type == StateDictType.FULL_STATE_DICT:
            return 'full', bool(
                getattr(settings.state_dict_config, 'rank0_only', False))
        return 'local', False

    def prepare(self) -> None:
        """Put every FSDP unit back into its sharded state.

        A forward pass without a backward (validation, test) leaves the
        root unit's parameters gathered (FSDP1 keeps them after forward,
        expecting a backward): a copy into the local shard would not be
        seen by the next forward, which reuses the gathered values without
        gathering again, even after the root's parameters point back at the
        shard. A check per unit when all are sharded.
        """
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

    @torch.no_grad()
    def gather_full(self) -> Dict[str, Tensor]:
        from torch.distributed.fsdp import FullStateDictConfig
        with FSDP1.state_dict_type(
                self.root, StateDictType.FULL_STATE_DICT,
                FullStateDictConfig(offload_to_cpu=False, rank0_only=False)):
            return {
                clean_name(k): v
                for k, v in self.root.state_dict().items()
            }

    @torch.no_grad()
    def checkpoint_state_dict(self) -> Dict[str, Tensor]:
        # The strategy's FULL_STATE_DICT settings (e.g. rank0_only).
        return self.root.state_dict()

    @torch.no_grad()
    def scatter_full(self, state: Dict[str, Tensor]) -> None:
        # The strategy's FULL_STATE_DICT settings.
        self.root.load_state_dict(state, strict=False)


def register_wrap_policies() -> bool:
    """Register torch's ``size_based_auto_wrap_policy`` in mmengine's
    ``FUNCTIONS`` (if not already there), so that configs can write
    ``auto_wrap_policy=dict(type='size_based_auto_wrap_policy',
    min_num_params=...)`` for ``MMFullyShardedDataParallel``; whether it
    was registered now."""
    try:
        from mmengine.registry import FUNCTIONS
        from torch.distributed.fsdp.wrap import size_based_auto_wrap_policy
    except ImportError:  # pragma: no cover
        return False
    if 'size_based_auto_wrap_policy' in FUNCTIONS.module_dict:
        return False
    FUNCTIONS.register_module(module=size_based_auto_wrap_policy)
    return True

