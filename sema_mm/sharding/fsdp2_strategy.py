"""FSDP2 (``fully_shard``) for mmengine's ``FlexibleRunner``.

mmengine 0.10.7 runs FSDP1 (``FSDPStrategy``) but has no strategy for
FSDP2, PyTorch's per-parameter sharding (parameters become DTensors sharded
along dim 0). :class:`FSDP2Strategy` wraps the model with ``fully_shard``
and saves checkpoints as ``FSDPStrategy`` does, in one of two forms:

* ``state_dict_cfg='local'``: every rank writes ``<checkpoint>/rank{i}.pth``
  with its own shards (plain tensors) of the model and of the optimizer
  state. Resuming needs the same number of ranks and the same wrapping.
* ``state_dict_cfg='full'``: rank 0 writes one file with the whole model
  and optimizer state (gathered with ``torch.distributed.checkpoint``'s
  state-dict functions), loadable by an unwrapped model; resuming scatters
  it over any number of ranks.

``SwitchEMAHook`` keeps the EMA of each rank's shards
(:mod:`sema_mm.ema.sharded`) and saves it in the same form: the strategy
declares the form of the model it wrapped
(:func:`sema_mm.sharding.fsdp2.declare_checkpoint_form`), which the model's
adapter (:class:`~sema_mm.sharding.fsdp2.DTensorShards`) reports.

Example::

    runner_type = 'FlexibleRunner'
    strategy = dict(type='FSDP2Strategy', state_dict_cfg='full',
                    shard_modules=['TransformerEncoderLayer'])

Needs torch >= 2.6 (``torch.distributed.fsdp.fully_shard``).
"""
import os.path as osp
from typing import Any, Optional, Sequence

import torch
from mmengine._strategy import DDPStrategy
from mmengine.device import get_device
from mmengine.dist import get_rank, get_world_size, is_main_process
from mmengine.registry import STRATEGIES
from mmengine.utils import mkdir_or_exist
from torch import nn

from .adapter import DTensor
from .fsdp2 import declare_checkpoint_form, full_state_options


@STRATEGIES.register_module()
class FSDP2Strategy(DDPStrategy):
    """Shard the model with FSDP2 over all ranks (see the module docstring).

    Args:
        shard_modules (Sequence[str]): Class names of the submodules that
            become FSDP units of their own (their parameters are gathered
            one unit at a time, e.g. the transformer layers); the root
            module is always one. Defaults to none.
        reshard_after_forward (bool): Free the gathered parameters after
            the forward (ZeRO-3) rather than keeping them for the backward
            (ZeRO-2). Defaults to True.
        state_dict_cfg (str): ``'local'`` (per-rank files) or ``'full'``
            (one file written by rank 0). Defaults to ``'local'``.
        **kwargs: Other arguments of mmengine's ``DDPStrategy`` (its
            ``model_wrapper`` and ``sync_bn`` are not used).
    """

    def __init__(self,
                 *,
                 shard_modules: Sequence[str] = (),
                 reshard_after_forward: bool = True,
                 state_dict_cfg: str = 'local',
                 **kwargs) -> None:
        if state_dict_cfg not in ('local', 'full'):
            raise ValueError("FSDP2Strategy: state_dict_cfg must be 'local' "
                             f"or 'full', got {state_dict_cfg!r}.")
        try:
            from torch.distributed.fsdp import fully_shard  # noqa: F401
        except ImportError as e:
            raise ImportError(
                'FSDP2Strategy needs torch >= 2.6 (torch.distributed.fsdp.'
                f'fully_shard); this is torch {torch.__version__}. Use '
                "mmengine's FSDPStrategy (FSDP1).") from e
        super().__init__(**kwargs)
        self.shard_modules = tuple(shard_modules)
        self.reshard_after_forward = reshard_after_forward
        self.state_dict_cfg = state_dict_cfg

    # ---------------------------------------------------------------- wrap
    def _wrap_model(self, model: nn.Module) -> nn.Module:
        """Move the model to this rank's device (as ``DDPStrategy`` does:
        the mesh, and so every collective and every scatter of a full
        checkpoint, runs there), then shard it."""
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard
        model = model.to(get_device())
        device = next(model.parameters()).device
        mesh = init_device_mesh(device.type, (get_world_size(), ))
        units = [
            m for m in model.modules()
            if type(m).__name__ in self.shard_modules
        ]
        for module in units:
            fully_shard(module, mesh=mesh,
                        reshard_after_forward=self.reshard_after_forward)
        fully_shard(model, mesh=mesh,
                    reshard_after_forward=self.reshard_after_forward)
        declare_checkpoint_form(model, self.state_dict_cfg)
        return model

    # --------------------------------------------------------- state dicts
    def model_state_dict(self) -> dict:
        """This rank's shards (``'local'``) or, on rank 0, the whole model
        (``'full'``; a collective)."""
        if self.state_dict_cfg == 'local':
            return _local(self.model.state_dict())
        from torch.distributed.checkpoint.state_dict import (
            get_model_state_dict,
        )
        return get_model_state_dict(
            self.model, options=full_state_options(cpu_offload=True))

    def optim_state_dict(self) -> dict:
        """The optimizer state in the model's form (a collective for
        ``'full'``)."""
        if self.state_dict_cfg == 'local':
            return _local(self.optim_wrapper.state_dict())
        from torch.distributed.checkpoint.state_dict import (
            get_optimizer_state_dict,
        )
        return get_optimizer_state_dict(
            self.model, self.optim_wrapper.optimizer,
            options=full_state_options(cpu_offload=True))

    def load_model_state_dict(self, state_dict: dict, *,
                              strict: bool = False,
                              revise_keys: Any = None) -> None:
        """Load a state dict saved in this strategy's form."""
        if self.state_dict_cfg == 'local':
            with torch.no_grad():
                for name, tensor in self.model.state_dict().items():
                    if name in state_dict:
                        target = (tensor.to_local() if isinstance(
                            tensor, DTensor) else tensor)
                        target.copy_(state_dict[name])
            return
        from torch.distributed.checkpoint.state_dict import (
            set_model_state_dict,
        )
        set_model_state_dict(self.model, state_dict,
                             options=full_state_options(strict=strict))

    def load_optim_state_dict(self, state_dict: dict) -> None:
        """Load an optimizer state saved in this strategy's form."""
        if self.state_dict_cfg == 'full':
            from torch.distributed.checkpoint.state_dict import (
                set_optimizer_state_dict,
            )
            set_optimizer_state_dict(self.model, self.optim_wrapper.optimizer,
                                     state_dict,
                                     options=full_state_options())
            return
        params = [
            p for group in self.optim_wrapper.optimizer.param_groups
            for p in group['params']
        ]
        for index, entry in state_dict.get('state', {}).items():
            param = params[index]
            if not isinstance(param, DTensor):
                continue
            for key, value in entry.items():
                if torch.is_tensor(value) and key != 'step' and \
                        value.shape == param.to_local().shape:
                    entry[key] = DTensor.from_local(
                        value.to(param.device), param.device_mesh,
                        param.placements, run_check=False,
                        shape=param.shape, stride=param.stride())
        self.optim_wrapper.load_state_dict(state_dict)

    # --------------------------------------------------------- checkpoints
    def save_checkpoint(self,
                        filename: str,
                        *,
                        save_optimizer: bool = True,
                        save_param_scheduler: bool = True,
                        extra_ckpt: Optional[dict] = None,
                        callback=None) -> None:
        """Save on every rank's behalf (the state dicts and the hooks'
        ``before_save_checkpoint`` run on all ranks): ``filename`` is a
        directory of per-rank files (``'local'``) or one file written by
        rank 0 (``'full'``)."""
        from mmengine.runner.checkpoint import save_checkpoint
        checkpoint = dict(state_dict=self.model_state_dict())
        if save_optimizer and hasattr(self, 'optim_wrapper'):
            checkpoint['optimizer'] = self.optim_state_dict()
        if save_param_scheduler and hasattr(self, 'param_schedulers'):
            checkpoint['param_schedulers'] = self.scheduler_state_dict()
        checkpoint.update(extra_ckpt or {})
        checkpoint.setdefault('meta', {}).update(seed=self.seed)
        if callback is not None:
            callback(checkpoint)
        if self.state_dict_cfg == 'local':
            mkdir_or_exist(filename)
            save_checkpoint(checkpoint,
                            osp.join(filename, f'rank{get_rank()}.pth'))
        elif is_main_process():
            save_checkpoint(checkpoint, filename)

    def load_checkpoint(self, filename: str, **kwargs) -> dict:
        """Load ``filename`` (``'full'``) or this rank's file in the
        directory ``filename`` (``'local'``), on every rank."""
        if self.state_dict_cfg == 'local':
            filename = osp.join(filename, f'rank{get_rank()}.pth')
        return super().load_checkpoint(filename, **kwargs)


def _local(obj):
    """``obj`` (nested dicts and lists) with every DTensor replaced by this
    rank's shard."""
    if isinstance(obj, DTensor):
        return obj.to_local()
    if isinstance(obj, dict):
        return {k: _local(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_local(v) for v in obj)
    return obj
