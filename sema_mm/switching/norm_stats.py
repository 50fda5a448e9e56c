"""What a SEMA switch does with normalisation statistics (``buffers``).

:data:`NORM_STATS_POLICIES` maps each value of ``SwitchEMAHook``'s
``buffers`` argument to a :class:`NormStatsPolicy`: whether the EMA averages
the statistics, and what happens just before and after the EMA's tensors are
copied into the model:

* ``'params'`` (the paper): only parameters are switched; the model keeps its
  own statistics, averaged over ranks.
* ``'average'``: the EMA averages the statistics too; they are averaged over
  ranks, then switched in with the parameters.
* ``'recompute'``: after the switch the statistics are re-estimated from
  training batches (below).

Recomputing, after a switch with ``buffers='recompute'``: the switched-in
weights are an average, so the running statistics the model collected for its
own weights no longer fit them exactly. As ``torch.optim.swa_utils.update_bn``,
the statistics are reset and re-estimated as a cumulative average over a few
batches in training mode, without gradients. A private data loader with its
own seed is used, and the global random states are restored afterwards, so
the training run's data order and randomness are unchanged. Under
distributed training the statistics are averaged over ranks, so every rank
ends with the same buffers.
"""
import random
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import numpy as np
import torch
from mmengine.dist import all_reduce, get_rank, get_world_size
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm, _NormBase
from torch.utils.data import DataLoader

from ..ema.tensor_pairs import name_matches


def average_norm_stats(module: nn.Module, skip: Sequence[str] = ()) -> None:
    """Average the running statistics of every normalisation layer of
    ``module`` (but those under the names in ``skip``) over ranks; a no-op
    in a single process.

    Under DDP each rank's statistics come from its own share of the data
    (mmengine wraps models with ``broadcast_buffers=False``); their mean
    estimates the statistics of all the data better than any single rank's,
    which a broadcast would keep. Integer counters are equal on all ranks.
    """
    if get_world_size() == 1:
        return
    for name, m in module.named_modules():
        if isinstance(m, _NormBase) and m.track_running_stats and \
                not name_matches(name, skip):
            all_reduce(m.running_mean, op='mean')
            all_reduce(m.running_var, op='mean')


@torch.no_grad()
def recalibrate_bn(model: nn.Module, train_loader: DataLoader,
                   num_batches: int, seed: int) -> int:
    """Re-estimate the BN running statistics of ``model``.

    Args:
        model (nn.Module): An mmengine model (with ``data_preprocessor``),
            unwrapped from DDP.
        train_loader (DataLoader): The training loader; its dataset, batch
            size and collate function are reused.
        num_batches (int): Number of batches to average over.
        seed (int): Seed of the private shuffling (offset by the rank).

    Returns:
        int: The number of batches used.
    """
    bns: List[_BatchNorm] = [
        m for m in model.modules() if isinstance(m, _BatchNorm)
        and m.track_running_stats
    ]
    if not bns:
        return 0
    batch_size = train_loader.batch_size or getattr(
        train_loader.batch_sampler, 'batch_size', 1)
    loader = DataLoader(
        train_loader.dataset,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=train_loader.collate_fn,
        generator=torch.Generator().manual_seed(seed + get_rank()),
        num_workers=0)
    momenta = [bn.momentum for bn in bns]
    was_training = model.training
    py_state, np_state = random.getstate(), np.random.get_state()
    used = 0
    devices = list(range(torch.cuda.device_count()))
    with torch.random.fork_rng(devices=devices):
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average
        model.train()
        for used, batch in enumerate(loader, 1):
            data = model.data_preprocessor(batch, True)
            model(**data, mode='tensor')
            if used >= num_batches:
                break
    random.setstate(py_state)
    np.random.set_state(np_state)
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    model.train(was_training)
    average_norm_stats(model)
    return used


class SwitchContext(NamedTuple):
    """What a policy needs to know about one switch."""
    model: nn.Module  # the training model, unwrapped
    ema_module: nn.Module  # the module holding the EMA's tensors
    skip: Sequence[str]  # model modules whose statistics are left alone
    train_loader: DataLoader
    bn_batches: int
    seed: int  # for the private loader of 'recompute'


class NormStatsPolicy(NamedTuple):
    """One value of ``buffers``.

    Attributes:
        averaged (bool): The EMA averages the statistics (and the switch
            copies them).
        before_switch (Callable, optional): Runs before the copy.
        after_switch (Callable, optional): Runs after the copy; returns text
            for the switch's log line.
    """
    averaged: bool
    before_switch: Optional[Callable[[SwitchContext], None]] = None
    after_switch: Optional[Callable[[SwitchContext], str]] = None


def _average_model_stats(ctx: SwitchContext) -> str:
    average_norm_stats(ctx.model, skip=ctx.skip)
    return ''


def _average_ema_stats(ctx: SwitchContext) -> None:
    average_norm_stats(ctx.ema_module)


def _recompute_stats(ctx: SwitchContext) -> str:
    n = recalibrate_bn(ctx.model, ctx.train_loader, ctx.bn_batches,
                       seed=ctx.seed)
    return f'; BN statistics recomputed from {n} batches'


NORM_STATS_POLICIES: Dict[str, NormStatsPolicy] = {
    'params': NormStatsPolicy(False, after_switch=_average_model_stats),
    'average': NormStatsPolicy(True, before_switch=_average_ema_stats),
    'recompute': NormStatsPolicy(False, after_switch=_recompute_stats),
}
