"""How the EMA goes into checkpoints and comes back when resuming.

**EMAHook's form** (mmengine's ``EMAHook`` writes the same, so either hook
resumes the other's checkpoints): ``state_dict`` holds the averaged tensors
(ready to deploy, or to ``load_from`` in any config), ``ema_state_dict``
the model's own (``module.``-prefixed) plus everything else of the averaged
model (e.g. its ``steps``), which resuming swaps back. Only averaged
tensors are exchanged. Used by a separate EMA (:func:`save_swapped`,
:func:`load_swapped`) and by the sharded EMA of a ``'full'`` checkpoint
(:func:`full_ema_state`, :func:`split_full`).

**Per-rank form** of the sharded EMA (``'local'`` checkpoints, one file per
rank): ``state_dict`` is the strategy's local state of the model and
``ema_state_dict`` holds this rank's EMA shards by parameter name
(``shards``), ``steps``, the rank and the world size
(:func:`local_ema_state`).

A resumed checkpoint without ``ema_state_dict`` restarts the EMA from the
resumed weights, with a warning (:func:`warn_no_ema_state`).
"""
import logging
from typing import Dict, Sequence

from mmengine.logging import print_log
from torch import Tensor, nn

#: Top-level key of a full checkpoint of a sharded run: one dict per rank
#: (in rank order) of that rank's normalisation statistics, ``model.<name>``
#: and, with ``buffers='average'``, ``ema.<name>``. Resuming with the same
#: number of ranks gives every rank its own back.
RANK_NORM_STATS = 'rank_norm_stats'


def warn_no_ema_state() -> None:
    """Warn that a resumed checkpoint has no EMA to restore."""
    print_log(
        'SwitchEMAHook: the resumed checkpoint has no `ema_state_dict`; the '
        'EMA starts again from the resumed weights.', logger='current',
        level=logging.WARNING)


def swap_averaged(model_state: Dict, ema_state: Dict,
                  names: Sequence[str]) -> None:
    """Exchange the averaged entries ``names`` of a model state dict and an
    averaged model's (``module.``-prefixed)."""
    for name in names:
        if name in model_state:
            key = 'module.' + name
            model_state[name], ema_state[key] = (ema_state[key],
                                                 model_state[name])


def check_ema_state(expected: Dict, ema_state: Dict) -> None:
    """Fail with a clear message when a checkpoint's EMA (``ema_state``)
    does not fit the averaged model's state dict ``expected``."""
    missing = sorted(set(expected) - set(ema_state))
    unexpected = sorted(set(ema_state) - set(expected))
    mismatched = sorted(
        k for k in set(expected) & set(ema_state)
        if tuple(expected[k].shape) != tuple(ema_state[k].shape))
    if missing or unexpected or mismatched:
        raise ValueError(
            'SwitchEMAHook: the EMA in the resumed checkpoint does not '
            f'match the model (missing: {missing[:5]}, unexpected: '
            f'{unexpected[:5]}, shape mismatch: {mismatched[:5]}). Resume '
            'from a checkpoint of this config, or start a new run with '
            '`load_from=<checkpoint>` (the EMA then starts from the '
            'loaded weights).')


def save_swapped(checkpoint: dict, ema_model: nn.Module,
                 names: Sequence[str], ema_is_model: bool) -> None:
    """Put a separate averaged model into ``checkpoint`` in EMAHook's form;
    ``ema_is_model``: averaging has not begun, so the model's tensors stand
    for the EMA's."""
    ema_state = ema_model.state_dict()
    model_state = checkpoint['state_dict']
    averaged = set(names)
    for name in model_state:
        key = 'module.' + name
        if key in ema_state and (name not in averaged or ema_is_model):
            # Not averaged, or not averaged yet: store the model's.
            ema_state[key] = model_state[name]
    swap_averaged(model_state, ema_state, names)
    checkpoint['ema_state_dict'] = ema_state


def load_swapped(checkpoint: dict, ema_model: nn.Module,
                 names: Sequence[str]) -> bool:
    """Restore a separate averaged model from a checkpoint in EMAHook's
    form (and give the checkpoint's ``state_dict`` the model's own weights
    back); whether it held one."""
    if 'ema_state_dict' not in checkpoint:
        warn_no_ema_state()
        return False
    ema_state = checkpoint['ema_state_dict']
    check_ema_state(ema_model.state_dict(), ema_state)
    swap_averaged(checkpoint['state_dict'], ema_state, names)
    ema_model.load_state_dict(ema_state, strict=True)
    return True


def full_ema_state(model_state: Dict[str, Tensor],
                   ema_full: Dict[str, Tensor], names: Sequence[str],
                   steps: Tensor) -> Dict[str, Tensor]:
    """EMAHook's form from a whole model state dict and the whole EMA: puts
    the EMA's ``names`` into ``model_state`` and returns the
    ``ema_state_dict`` (the model's own weights, ``module.``-prefixed, and
    ``steps``)."""
    ema_state = {'module.' + k: v for k, v in model_state.items()}
    ema_state['steps'] = steps
    for name in names:
        model_state[name] = ema_full[name]
    return ema_state


def split_full(model_state: Dict[str, Tensor], ema_state: Dict[str, Tensor],
               names: Sequence[str]) -> Dict[str, Tensor]:
    """The reverse of :func:`full_ema_state`: gives ``model_state`` the
    model's own ``names`` back and returns the whole EMA (the model state
    dict with the averaged entries)."""
    ema_full = dict(model_state)
    for name in names:
        model_state[name] = ema_state['module.' + name]
    return ema_full


def local_ema_state(shards: Dict[str, Tensor], steps: Tensor, rank: int,
                    world_size: int) -> Dict:
    """The per-rank ``ema_state_dict`` of a sharded EMA."""
    return dict(steps=steps, world_size=world_size, rank=rank,
                shards={n: t.detach().clone()
                        for n, t in shards.items()})
