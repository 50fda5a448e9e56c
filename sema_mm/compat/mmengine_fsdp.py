"""A fix to mmengine's FSDP strategy (FSDP1) for torch >= 2.1.

mmengine 0.10.7's ``FSDPStrategy.load_optim_state_dict`` passes
``(state_dict, model, optimizer)`` to ``FSDP.optim_state_dict_to_load``,
torch 2.0's order; from torch 2.1 on the function takes ``(model, optim,
optim_state_dict)``, so every FSDP resume failed (``unhashable type:
'dict'``). :func:`fix_fsdp_optim_loading` replaces the method with one
that uses torch's order, only where torch's signature starts with
``model``.
"""
import inspect

try:
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP1
except ImportError:  # pragma: no cover - torch without distributed
    FSDP1 = None


def fix_fsdp_optim_loading() -> bool:
    """Make mmengine's ``FSDPStrategy.load_optim_state_dict`` call
    ``FSDP.optim_state_dict_to_load`` with torch's argument order (see the
    module docstring); whether it was patched now."""
    if FSDP1 is None:
        return False
    try:
        from mmengine._strategy import FSDPStrategy
    except ImportError:  # pragma: no cover - mmengine without FSDP
        return False
    params = list(
        inspect.signature(FSDP1.optim_state_dict_to_load).parameters)
    current = FSDPStrategy.load_optim_state_dict
    if params[:1] != ['model'] or getattr(current, 'sema_mm_fixed', False):
        return False

    def load_optim_state_dict(self, state_dict: dict) -> None:
        """Load an optimizer state dict saved by :meth:`optim_state_dict`
        (sema_mm: torch >= 2.1 argument order)."""
        optim_state_dict = FSDP1.optim_state_dict_to_load(
            self.model, self.optim_wrapper.optimizer, state_dict)
        self.optim_wrapper.load_state_dict(optim_state_dict)

    load_optim_state_dict.sema_mm_fixed = True
    FSDPStrategy.load_optim_state_dict = load_optim_state_dict
    return True
