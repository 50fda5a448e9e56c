"""Sharded models: one adapter per way of sharding, for the sharded EMA.

:func:`find_sharded` looks at a model once and, when its parameters are
sharded, returns its :class:`~.adapter.ShardAdapter` (the protocol is
described in :mod:`.adapter`): :class:`~.fsdp1.FSDP1Shards` for
``FullyShardedDataParallel``, :class:`~.fsdp2.DTensorShards` for FSDP2
(``fully_shard``) and other DTensor parameters. :class:`~.ddp.DDPShards`
shards the EMA of a DDP model over its ranks (``SwitchEMAHook(shard=True)``;
not found by :func:`find_sharded`: the model itself is not sharded).
:class:`~.fsdp2_strategy.FSDP2Strategy` runs FSDP2 in mmengine's
``FlexibleRunner`` (registered in ``STRATEGIES``).
"""
from typing import Optional

from torch import nn

from .adapter import ShardAdapter, clean_name, dtensor_params
from .ddp import DDPShards, flat_view
from .fsdp1 import FSDP1Shards, is_fsdp1
from .fsdp2 import DTensorShards
from .fsdp2_strategy import FSDP2Strategy


def find_sharded(model: nn.Module) -> Optional[ShardAdapter]:
    """The adapter of ``model`` (an FSDP1 root wrapper, or a model with
    DTensor parameters), or None when nothing in it is sharded."""
    if is_fsdp1(model):
        return FSDP1Shards(model)
    if dtensor_params(model):
        return DTensorShards(model)
    return None


__all__ = [
    'ShardAdapter', 'FSDP1Shards', 'DTensorShards', 'DDPShards',
    'FSDP2Strategy', 'find_sharded', 'clean_name', 'flat_view'
]
