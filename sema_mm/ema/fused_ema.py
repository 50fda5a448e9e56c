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

With ``device='cpu'`` for a model on a CUDA device the updates overlap the
next iterations (a side-stream copy to pinned memory, the host ``lerp_`` in
a worker thread; :mod:`sema_mm.ema.host_offload`), with the same numbers as
the synchronous update; ``overlap=False`` turns that off.
"""
import weakref
from typing import List, Optional, Sequence

import torch
from mmengine.model import ExponentialMovingAverage
from mmengine.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from ..errors import require
from .host_offload import HostOffload, host_offload_for
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
        overlap (bool, optional): Run the updates of an average held on the
            host beside training (:mod:`sema_mm.ema.host_offload`): the
            copy to the host on a side CUDA stream, the ``lerp_`` in a
            worker thread, same results. None (default): when the average
            is on the CPU and the model on one CUDA device. True also for a
            model on the CPU (the average must be on the CPU).
        host_threads (int, optional): Torch CPU threads of the overlapped
            ``lerp_``. Defaults to half of ``torch.get_num_threads()``.

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
                 exclude: Sequence[str] = (),
                 overlap: Optional[bool] = None,
                 host_threads: Optional[int] = None) -> None:
        super().__init__(model, momentum, interval, device, update_buffers)
        if warmup_iters < 0:
            raise ValueError(f'warmup_iters must be >= 0, got {warmup_iters}')
        on_host = all(t.device.type == 'cpu' for t in self.module.parameters())
        require(
            not overlap or on_host,
            "overlap=True needs the average on the host: set device='cpu'.")
        require(
            host_threads is None
            or (isinstance(host_threads, int) and host_threads >= 1),
            f'host_threads must be an int >= 1, got {host_threads!r}.')
        self.overlap = overlap
        self.host_threads = host_threads
        self._offload: Optional[HostOffload] = None
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
            self.close()
            self._pairs = TensorPairs(self.module, model, self.averaged_names)
            self._source = weakref.ref(model)
            self._offload = host_offload_for(self._pairs, model,
                                             self.overlap, self.host_threads)
        return self._pairs

    def __getattr__(self, name: str):
        # ``module`` (the averaged model, a submodule, hence looked up here)
        # is complete when read: code that uses it directly (mmengine's
        # EMAHook, evaluation, user code) never sees an update half done.
        if name == 'module':
            offload = self.__dict__.get('_offload')
            if offload is not None:
                offload.join()
        return super().__getattr__(name)

    def join(self) -> None:
        """Wait until every overlapped update is in the average (a no-op
        for synchronous updates)."""
        if self._offload is not None:
            self._offload.join()

    def close(self) -> None:
        """Join, then stop the overlapped updates' worker thread (it starts
        again with the next update)."""
        if self._offload is not None:
            self._offload.close()

    def seed(self, model: nn.Module) -> None:
        """Start the average from ``model``'s current weights."""
        pairs = self.pairs_for(model)
        self.join()
        pairs.copy_to_averaged()
        self.num_steps = 1

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        self.join()  # runs before the averaged module's tensors are read
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        self.join()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def update_parameters(self, model: nn.Module) -> None:
        """Fold ``model``'s current weights into the average (handed to
        the worker when the updates overlap)."""
        pairs = self.pairs_for(model)
        self.num_steps = ema_step(
            pairs if self._offload is None else self._offload,
            self.num_steps, self.schedule)

