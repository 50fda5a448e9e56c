"""An exponential moving average of model weights with fused updates.

:class:`FusedEMA` is mmengine's
:class:`~mmengine.model.ExponentialMovingAverage` (same convention, same
checkpoint keys, same registry) with the per-step cost cut to the memory
traffic the average needs:

* the update is one ``torch._foreach_lerp_`` per (device, dtype) group over
  lists built once, not a ``state_dict()`` and a per-tensor loop per step;
* the step counter is a Python int (mirrored into the ``steps`` buffer only
  when a state dict is written), so no step reads a device tensor;
* buffers that are not averaged are not copied every step.

The momentum (mmengine's convention: the weight of the *new* weights), its
warm-up and the compensated update interval are those of
:mod:`sema_mm.ema.momentum`, whose update rule this class runs.
"""
import weakref
from typing import List, Optional, Sequence

import torch
from mmengine.model import ExponentialMovingAverage
from mmengine.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from .momentum import MomentumSchedule, ema_step
from .tensor_pairs import TensorPairs, name_matches


def select_averaged_names(module: nn.Module, update_buffers: bool,
                          exclude: Sequence[str] = ()) -> List[str]:
    """Names of the tensors of ``module`` that an EMA averages and switches.

    Floating-point parameters, plus, when ``update_buffers`` is set, the
    floating-point statistics of normalisation layers (BatchNorm, SyncBN,
    InstanceNorm running mean and variance). Other buffers (integer counters,
    MoCo queues, position tables) are never averaged. Names under one of
    ``exclude`` (see :func:`name_matches`) are left out.
    """
    names = [
        n for n, p in module.named_parameters() if p.is_floating_point()
    ]
    if update_buffers:
        for mod_name, mod in module.named_modules():
            if isinstance(mod, _NormBase):
                names += [
                    f'{mod_name}.{n}' if mod_name else n
                    for n, b in mod.named_buffers(recurse=False)
                    if b is not None and b.is_floating_point()
                ]
    return [n for n in names if not name_matches(n, exclude)]


class PythonStepCounter:
    """Mixin for an ``nn.Module`` with a ``steps`` buffer: the count lives
    in the Python int ``num_steps`` and is mirrored into ``steps`` only when
    a state dict is written or read, so no update reads a device tensor."""
    num_steps: int

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        self.steps.fill_(self.num_steps)
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.num_steps = int(self.steps)


@MODELS.register_module()
class FusedEMA(PythonStepCounter, ExponentialMovingAverage):
    """EMA of a model's weights with fused multi-tensor updates.

    Args:
        model (nn.Module): The model to average; it is deep-copied.
        momentum (float): Weight of the new weights in each update
            (mmengine convention; paper/timm decay is ``1 - momentum``).
            Must lie in (0, 1). Defaults to 1e-3.
        interval (int): Update every ``interval`` calls, with the momentum
            compensated as ``1 - (1 - m) ** interval``. Defaults to 1.
        device (torch.device, optional): Keep the average on this device
            (e.g. ``'cpu'`` to save accelerator memory). Defaults to the
            model's device.
        update_buffers (bool): Also average the running statistics of
            normalisation layers. Defaults to False (parameters only).
        warmup_iters (int): Time constant, in updates, of the momentum
            warm-up described in the module docstring; 0 disables it.
            Defaults to 0.
        exclude (Sequence[str]): Names of parameters, buffers or modules kept
            out of the average. Defaults to ().

    Attributes:
        schedule (MomentumSchedule): ``momentum``, ``interval`` and
            ``warmup_iters`` as one value.
    """

    def __init__(self,
                 model: nn.Module,
                 momentum: float = 1e-3,
                 interval: int = 1,
                 device: Optional[torch.device] = None,
                 update_buffers: bool = False,
                 warmup_iters: int = 0,
                 exclude: Sequence[str] = ()) -> None:
        super().__init__(model, momentum, interval, device, update_buffers)
        if warmup_iters < 0:
            raise ValueError(f'warmup_iters must be >= 0, got {warmup_iters}')
        self.warmup_iters = warmup_iters
        self.schedule = MomentumSchedule(self.momentum, self.interval,
                                         warmup_iters)
        self.exclude = tuple(exclude)
        self.averaged_names = select_averaged_names(self.module,
                                                    update_buffers,
                                                    self.exclude)
        self.num_steps = 0
        self._pairs: Optional[TensorPairs] = None
        # A weak reference: an nn.Module attribute would become a submodule.
        self._source = lambda: None

    def momentum_at(self, k: int) -> float:
        """Momentum of the ``k``-th update (``k >= 1``) before compensation."""
        return self.schedule.momentum_at(k)

    def pairs_for(self, model: nn.Module) -> TensorPairs:
        """The (average, model) tensor pairs, built once per source model."""
        if self._source() is not model:
            self._pairs = TensorPairs(self.module, model, self.averaged_names)
            self._source = weakref.ref(model)
        return self._pairs

    def seed(self, model: nn.Module) -> None:
        """Start the average from ``model``'s current weights."""
        self.pairs_for(model).copy_to_averaged()
        self.num_steps = 1

    def update_parameters(self, model: nn.Module) -> None:
        """Fold ``model``'s current weights into the average."""
        self.num_steps = ema_step(self.pairs_for(model), self.num_steps,
                                  self.schedule)

