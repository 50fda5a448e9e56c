"""The EMA model's buffers that are not averaged follow the model's.

mmengine's :class:`~mmengine.model.ExponentialMovingAverage` with
``update_buffers=False`` copies every buffer of the model into its own copy
after each update, so ``EMAHook.ema_model.module`` always carries the
model's BatchNorm running statistics and ``num_batches_tracked``: in eval
mode it gives the outputs of the averaged weights with the model's
statistics. Users read ``hook.ema_model`` directly (for export, as a
teacher, in their own hooks), so SEMA's EMA must carry them too.

:func:`tie_buffers` gives the same result at no per-step cost: each buffer of
the EMA module that is not averaged is replaced by the model's own tensor
(shared storage), so it is never stale and never copied. Only buffers on a
different device than the model's (an EMA kept on the CPU with
``device='cpu'``) cannot share storage; :meth:`BufferTies.refresh` copies
those, and the hook calls it where the EMA is handed to users (the end of
every training epoch, before validation, test and checkpoints).
"""
from typing import List, Sequence, Tuple

import torch
from torch import nn

Tie = Tuple[nn.Module, str, nn.Module, str]


class BufferTies:
    """The EMA module's buffers that follow the model's.

    Attributes:
        shared (List[Tie]): (EMA owner, name, model owner, name) of the
            buffers that share the model's tensor.
        copied (List[Tie]): The same for buffers on another device than the
            model's, copied by :meth:`refresh`.
    """

    def __init__(self, shared: List[Tie], copied: List[Tie]) -> None:
        self.shared = shared
        self.copied = copied

    @torch.no_grad()
    def refresh(self) -> None:
        """Bring every tied buffer up to date: copy those on another device,
        and share again any tensor the model replaced since (``model.to()``
        or ``model.half()`` replace buffer tensors); a few identity checks
        otherwise."""
        for ema_owner, ema_name, owner, name in self.shared:
            if ema_owner._buffers[ema_name] is not owner._buffers[name]:
                ema_owner._buffers[ema_name] = owner._buffers[name]
        for ema_owner, ema_name, owner, name in self.copied:
            ema_owner._buffers[ema_name].copy_(owner._buffers[name])


def _owner(module: nn.Module, name: str) -> Tuple[nn.Module, str]:
    """The submodule holding the buffer ``name`` and its local name."""
    path, _, local = name.rpartition('.')
    return (module.get_submodule(path) if path else module), local


def tie_buffers(ema_module: nn.Module, model: nn.Module,
                averaged: Sequence[str]) -> BufferTies:
    """Make the buffers of ``ema_module`` that are not in ``averaged`` follow
    those of ``model`` (same names and shapes).

    Args:
        ema_module (nn.Module): The EMA's copy of the model.
        model (nn.Module): The training model, unwrapped.
        averaged (Sequence[str]): Names of the tensors the EMA averages;
            their buffers (``buffers='average'``) are left alone.

    Returns:
        BufferTies: What is shared and what is copied.
    """
    skip = set(averaged)
    model_buffers = dict(model.named_buffers())
    shared: List[Tie] = []
    copied: List[Tie] = []
    for name, ema_buf in list(ema_module.named_buffers()):
        model_buf = model_buffers.get(name)
        if name in skip or model_buf is None or \
                model_buf.shape != ema_buf.shape or \
                model_buf.dtype != ema_buf.dtype:
            continue
        tie = _owner(ema_module, name) + _owner(model, name)
        (shared if model_buf.device == ema_buf.device else copied).append(tie)
    ties = BufferTies(shared, copied)
    ties.refresh()
    return ties
