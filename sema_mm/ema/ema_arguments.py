"""Checks of the arguments that ``SwitchEMAHook`` passes to its averaged
model (``ema_type``), with messages that say what to change.

Arguments the hook does not know itself (``**kwargs``) go to the averaged
model, e.g. ``warmup_iters`` or ``device`` for ``FusedEMA``. A wrong name
fails there with Python's ``TypeError``; :func:`unknown_arguments_error`
turns it into a message that names only the unknown arguments and lists
the valid ones. :func:`check_ema_device` refuses a device that this machine
does not have, before anything is built.
"""
import inspect
from typing import List, Optional

import torch
from mmengine.registry import HOOKS

from ..errors import require

#: Arguments of the averaged model that the hook sets itself.
SET_BY_HOOK = ('model', 'update_buffers', 'exclude')


def _named_arguments(func) -> List[str]:
    """Names of the arguments ``func`` declares (not ``*args``,
    ``**kwargs``), ``self`` aside."""
    return [
        p.name for p in inspect.signature(func).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and p.name != 'self'
    ]


def _argument_names(func) -> Optional[List[str]]:
    """Names of the keyword arguments ``func`` accepts; None when it takes
    ``**kwargs`` (any name may then be valid)."""
    params = inspect.signature(func).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return _named_arguments(func)


def unknown_arguments_error(ema_cls: type, cfg: dict,
                            error: TypeError) -> ValueError:
    """The error for averaged-model arguments ``cfg`` that ``ema_cls``
    refused with ``error``.

    Args:
        ema_cls (type): The averaged model class (``ema_type``).
        cfg (dict): The arguments it was built with, but ``model``.
        error (TypeError): What building it raised.
    """
    name = ema_cls.__name__
    accepted = _argument_names(ema_cls.__init__)
    unknown = sorted(k for k in cfg if k not in (accepted or cfg))
    if not unknown:
        return ValueError(
            f'SwitchEMAHook: ema_type={name} does not accept the arguments '
            f'it was given: {error}.')
    valid = [a for a in accepted if a not in SET_BY_HOOK]
    hook_args = _named_arguments(HOOKS.get('SwitchEMAHook').__init__)
    return ValueError(
        f'SwitchEMAHook: ema_type={name} does not accept the arguments '
        f'{unknown}: they are neither arguments of SwitchEMAHook nor of '
        f'{name}. Valid arguments: SwitchEMAHook {hook_args}; {name} '
        f'{valid}. (Options such as warmup_iters belong to the default '
        "ema_type 'FusedEMA'.)")


def check_ema_device(device) -> None:
    """Refuse an EMA ``device`` that cannot be used here (no GPU for
    ``'cuda'``), before training; None (the model's device) always fits."""
    if device is None:
        return
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f'SwitchEMAHook: device={device!r} is not a torch device ({e}); '
            "use e.g. 'cpu', 'cuda' or None (the model's device).") from e
    require(
        kind != 'cuda' or torch.cuda.is_available(),
        f'device={device!r}, but no CUDA GPU is available here. Remove '
        "`device` (the EMA then lives with the model) or set device='cpu'.")
