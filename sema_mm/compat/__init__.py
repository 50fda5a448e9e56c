"""Everything sema_mm changes in, or resolves about, torch and mmengine.

* :mod:`.torch_ops`: the fused multi-tensor kernels, resolved once by
  capability, with per-tensor fallbacks (torch 2.0 to the newest).
* :mod:`.checkpoint_safety`: mmengine's local checkpoint loading never runs
  code from a file, on every supported torch.
* :mod:`.atomic_checkpoints`: checkpoint files are written atomically.
* :mod:`.mmselfsup`: lets mmselfsup 1.0.0 build its loops with mmengine
  0.10.7 (imported by the mmselfsup configs only).

:mod:`.fsdp` finds the local shards of FSDP1 / FSDP2 models for the sharded
EMA, and holds three fixes for mmengine's FSDP strategy (see its docstring).

:func:`apply` installs the changes to mmengine (all but the mmselfsup shim);
importing sema_mm calls it once.
"""
from ..sharding import fsdp1 as fsdp
from .atomic_checkpoints import use_atomic_local_writes
from .checkpoint_safety import allow_mmengine_checkpoints


def apply() -> None:
    """Install sema_mm's changes to mmengine: safe and atomic checkpoint
    files, and the FSDP fixes."""
    allow_mmengine_checkpoints()
    use_atomic_local_writes()
    fsdp.fix_fsdp_optim_loading()
    fsdp.allow_sharded_tensor_checkpoints()
    fsdp.register_wrap_policies()


__all__ = ['apply']
