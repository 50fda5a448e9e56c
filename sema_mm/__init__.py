"""Switch EMA (SEMA) for OpenMMLab 2.x.

Importing sema_mm registers :class:`~sema_mm.hooks.SwitchEMAHook` in
mmengine's root ``HOOKS`` registry and :class:`~sema_mm.models.FusedEMA` in
its root ``MODELS`` registry, so ``custom_imports=dict(imports=['sema_mm'])``
makes ``dict(type='SwitchEMAHook')`` work under the mmdet, mmpretrain,
mmselfsup and mmcls scopes. It also lets mmengine load its own checkpoints
with ``torch.load(weights_only=True)`` (see :mod:`sema_mm.checkpoint_safety`)
and write them atomically (see :mod:`sema_mm.utils.checkpoint_files`).
"""
from .checkpoint_safety import allow_mmengine_checkpoints
from .hooks import SwitchEMAHook
from .models import FusedEMA
from .utils.checkpoint_files import use_atomic_local_writes
from .version import __version__

allow_mmengine_checkpoints()
use_atomic_local_writes()

__all__ = ['SwitchEMAHook', 'FusedEMA', '__version__']
