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
from typing import Dict, List, Optional, Sequence, Tuple

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


def ema_state_mismatch(expected: Dict,
                       ema_state: Dict) -> Tuple[List[str], List[str],
                                                 List[str]]:
    """Keys of a checkpoint's EMA (``ema_state``) that are missing from it,
    unexpected, or of another shape than in the averaged model's state dict
    ``expected``."""
    missing = sorted(set(expected) - set(ema_state))
    unexpected = sorted(set(ema_state) - set(expected))
    mismatched = sorted(
        k for k in set(expected) & set(ema_state)
        if tuple(expected[k].shape) != tuple(ema_state[k].shape))
    return missing, unexpected, mismatched


def _describe(missing, unexpected, mismatched) -> str:
    return (f'missing: {missing[:5]}, unexpected: {unexpected[:5]}, shape '
            f'mismatch: {mismatched[:5]}')


def check_ema_state(expected: Dict, ema_state: Dict,
                    hint: str = '') -> None:
    """Fail with a clear message when a checkpoint's EMA (``ema_state``)
    does not fit the averaged model's state dict ``expected``; ``hint``
    ends the message."""
    found = ema_state_mismatch(expected, ema_state)
    if any(found):
        raise ValueError(
            'SwitchEMAHook: the EMA in the resumed checkpoint does not '
            f'match the model ({_describe(*found)}). Resume from a '
            'checkpoint of this config, or start a new run with '
            '`load_from=<checkpoint>` (the EMA then starts from the loaded '
            f'weights){hint}.')


def _fitting_part(expected: Dict, ema_state: Dict,
                  names: Sequence[str]) -> Optional[Dict]:
    """``strict_load=False``: the entries of a checkpoint's EMA that fit,
    if they cover every averaged tensor of ``names`` (None otherwise), with
    a warning either way."""
    missing, unexpected, mismatched = ema_state_mismatch(expected, ema_state)
    found = _describe(missing, unexpected, mismatched)
    bad = set(missing) | set(mismatched)
    if any('module.' + n in bad for n in names):
        print_log(
            'SwitchEMAHook: the EMA in the resumed checkpoint does not cover '
            f'the averaged weights ({found}); strict_load=False: the EMA '
            'starts again from the resumed weights.', logger='current',
            level=logging.WARNING)
        return None
    print_log(
        'SwitchEMAHook: strict_load=False: loaded the EMA entries of the '
        f'resumed checkpoint that fit the model ({found}).',
        logger='current', level=logging.WARNING)
    return {
        k: v
        for k, v in ema_state.items()
        if k not in unexpected and k not in mismatched
    }


def fitting_ema_state(expected: Dict, ema_state: Dict, names: Sequence[str],
                      strict: bool) -> Optional[Dict]:
    """What to load of a checkpoint's EMA (``ema_state``) into an averaged
    model whose state dict is ``expected`` (``strict_load``): all of it when
    it fits. Otherwise ``strict`` fails, with the names that do not fit;
    without, the entries that fit if they cover every averaged tensor of
    ``names``, else None (the EMA starts again from the resumed weights),
    with a warning either way."""
    if strict:
        check_ema_state(expected, ema_state,
                        hint=', or set strict_load=False to load the '
                        'entries that fit')
        return ema_state
    if not any(ema_state_mismatch(expected, ema_state)):
        return ema_state
    return _fitting_part(expected, ema_state, names)


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
                 names: Sequence[str], strict: bool = True) -> bool:
    """Restore a separate averaged model from a checkpoint in EMAHook's
    form (and give the checkpoint's ``state_dict`` the model's own weights
    back); whether it held one that fits.

    A checkpoint EMA that does not fit the model fails with ``strict``
    (``strict_load``); without, its entries that fit are loaded if they
    cover every averaged tensor, and it is ignored otherwise (the EMA
    starts again from the resumed weights).
    """
    if 'ema_state_dict' not in checkpoint:
        warn_no_ema_state()
        return False
    ema_state = fitting_ema_state(ema_model.state_dict(),
                                  checkpoint['ema_state_dict'], names, strict)
    if ema_state is None:
        return False
    swap_averaged(checkpoint['state_dict'], ema_state, names)
    ema_model.load_state_dict(ema_state, strict=False)
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
