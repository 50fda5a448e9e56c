"""FSDP2 (``fully_shard``) and other DTensor parameters: the sharded EMA's
adapter (:class:`DTensorShards`, see :mod:`sema_mm.sharding.adapter`).

Each parameter is a DTensor; its local shard is ``p.to_local()``, which
FSDP2 keeps in one storage (``_sharded_param_data``) between iterations.
Full state dicts go through ``torch.distributed.checkpoint``'s state-dict
functions. The checkpoint form is the one the strategy that wrapped the
model declared (:func:`declare_checkpoint_form`; ``'local'`` when none
did).
"""
import weakref
from typing import Dict, Tuple

import torch
from torch import Tensor, nn

from .adapter import DTensor, ShardAdapter, clean_name

try:
    from torch.distributed.fsdp import FSDPModule
except ImportError:  # pragma: no cover - torch < 2.6
    FSDPModule = None

#: Model -> the checkpoint form its strategy saves it in (see
#: :func:`declare_checkpoint_form`); weak keys, so a model is not kept alive.
_CHECKPOINT_FORMS: 'weakref.WeakKeyDictionary[nn.Module, str]' = \
    weakref.WeakKeyDictionary()


def declare_checkpoint_form(model: nn.Module, form: str) -> None:
    """Record that the strategy that wrapped ``model`` saves it in ``form``,
    ``'local'`` (per-rank files) or ``'full'`` (rank 0 writes the whole
    model), so that the sharded EMA saves itself alike."""
    _CHECKPOINT_FORMS[model] = form


def full_state_options(**kwargs):
    """``torch.distributed.checkpoint``'s ``StateDictOptions`` for whole
    (unsharded) state dicts."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions
    return StateDictOptions(full_state_dict=True, **kwargs)


class DTensorShards(ShardAdapter):
    """The local shards of a model with DTensor parameters (FSDP2).

    Args:
        root (nn.Module): The model (after ``fully_shard``).
    """
    name = 'dtensor'

    def checkpoint_form(self) -> Tuple[str, bool]:
        """``('full', True)`` when the model's strategy declared
        ``'full'``, else ``('local', False)``."""
        if _CHECKPOINT_FORMS.get(self.root, 'local') == 'full':
            return 'full', True
        return 'local', False

    def prepare(self) -> None:
        """Reshard every FSDP2 unit: a forward without a backward
        (validation, test) leaves the root unit's parameters gathered, and
        the next forward would reuse them instead of the local shards."""
        if FSDPModule is None:
            return
        for module in self.root.modules():
            if isinstance(module, FSDPModule):
                module.reshard()

    @torch.no_grad()
    def gather_full(self) -> Dict[str, Tensor]:
        state = {}
        for name, tensor in self.root.state_dict().items():
            if DTensor is not None and isinstance(tensor, DTensor):
                tensor = tensor.full_tensor()
            state[clean_name(name)] = tensor.detach().clone()
        return state

    @torch.no_grad()
    def scatter_full(self, state: Dict[str, Tensor]) -> None:
        from torch.distributed.checkpoint.state_dict import (
            set_model_state_dict,
        )
        set_model_state_dict(self.root, state,
                             options=full_state_options(strict=False))
