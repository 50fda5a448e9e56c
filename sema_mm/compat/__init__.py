"""Everything sema_mm changes in, or resolves about, torch and mmengine.

* :mod:`.torch_ops`: the fused multi-tensor kernels, resolved once by
  capability, with per-tensor fallbacks (torch 2.0 to the newest).
* :mod:`.checkpoint_safety`: mmengine's local checkpoint loading never runs
  code from a file, on every supported torch.
* :mod:`.atomic_checkpoints`: checkpoint files are written atomically.
* :mod:`.mmengine_fsdp`: mmengine's FSDP strategy resumes with torch >= 2.1.
* :mod:`.mmselfsup`: lets mmselfsup 1.0.0 build its loops with mmengine
  0.10.7 (imported by the mmselfsup configs only).

:func:`apply` makes the changes to mmengine (all but the mmselfsup shim)
that the running mmengine needs; importing sema_mm calls it once. Every
change is listed, with why, the versions it applies to and how to turn it
off, in ``docs/mmengine_changes.md``. Safe checkpoint loading is always
applied; the others can be kept out by naming them in the environment
variable :data:`KEEP_MMENGINE_ENV` (comma-separated names of
:data:`OPTIONAL_CHANGES`) before sema_mm is imported.
"""
import logging
import os
from typing import Callable, Dict

import mmengine
from mmengine.logging import print_log
from mmengine.utils import digit_version

from ..sharding.fsdp1 import register_wrap_policies
from .atomic_checkpoints import use_atomic_local_writes
from .checkpoint_safety import allow_mmengine_checkpoints
from .mmengine_fsdp import fix_fsdp_optim_loading

#: The newest mmengine release checked to need the changes (0.10.7 is the
#: newest release); a newer mmengine gets only safe checkpoint loading.
NEWEST_CHECKED_MMENGINE = '0.10.7'
#: Names of the changes that can be kept out (see :func:`apply`).
KEEP_MMENGINE_ENV = 'SEMA_MM_KEEP_MMENGINE'


def _atomic_checkpoints() -> bool:
    use_atomic_local_writes()
    return True


#: The changes that :envvar:`SEMA_MM_KEEP_MMENGINE` can keep out, by name.
OPTIONAL_CHANGES: Dict[str, Callable[[], bool]] = {
    'atomic_checkpoints': _atomic_checkpoints,
    'fsdp_optim_loading': fix_fsdp_optim_loading,
    'wrap_policies': register_wrap_policies,
}


def mmengine_needs_changes(version: str = mmengine.__version__) -> bool:
    """Whether the mmengine ``version`` is one the optional changes were
    written for (up to :data:`NEWEST_CHECKED_MMENGINE`)."""
    return digit_version(version) <= digit_version(NEWEST_CHECKED_MMENGINE)


def apply() -> Dict[str, bool]:
    """Make sema_mm's changes to mmengine: safe checkpoint loading always;
    atomic checkpoint files, the FSDP resume fix and the wrap-policy
    registration where the running mmengine needs them and
    ``SEMA_MM_KEEP_MMENGINE`` does not name them. Returns each change's
    name -> whether it was made now."""
    allow_mmengine_checkpoints()
    applied = {'safe_loading': True}
    keep = {
        name.strip()
        for name in os.environ.get(KEEP_MMENGINE_ENV, '').split(',')
        if name.strip()
    }
    unknown = sorted(keep - set(OPTIONAL_CHANGES))
    if unknown:
        print_log(
            f'sema_mm: {KEEP_MMENGINE_ENV} names unknown changes {unknown}; '
            f'known: {sorted(OPTIONAL_CHANGES)} (safe checkpoint loading '
            'cannot be turned off).', logger='current',
            level=logging.WARNING)
    needed = mmengine_needs_changes()
    for name, change in OPTIONAL_CHANGES.items():
        applied[name] = needed and name not in keep and change()
    return applied


__all__ = ['apply', 'KEEP_MMENGINE_ENV', 'OPTIONAL_CHANGES']
