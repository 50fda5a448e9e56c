"""Switch EMA (SEMA) for OpenMMLab 2.x.

Importing sema_mm registers :class:`~sema_mm.hooks.SwitchEMAHook` in
mmengine's root ``HOOKS`` registry and :class:`~sema_mm.ema.FusedEMA` in
its root ``MODELS`` registry (and :class:`~sema_mm.sharding.FSDP2Strategy`
in ``STRATEGIES``), so ``custom_imports=dict(imports=['sema_mm'])``
makes ``dict(type='SwitchEMAHook')`` work under the mmdet, mmpretrain,
mmselfsup and mmcls scopes. It also makes mmengine load checkpoints without
ever running code from them and, where the mmengine version needs it,
write them atomically and resume FSDP (:func:`sema_mm.compat.apply`; every
change is listed in ``docs/mmengine_changes.md``).

Packages of the product: ``hooks`` (the hook's lifecycle), ``ema`` (the EMA
and its strategies), ``switching`` (schedule, pull-back, normalisation
statistics), ``sharding`` (the adapters of sharded models, FSDP2 for
``FlexibleRunner``), ``resume`` (training loops that resume exactly and stop
cleanly on preemption, registered in ``LOOPS``), ``compat`` (torch
capabilities, changes to mmengine), ``cli`` (the tools' helpers),
``datasets``, ``selfsup``. Apart from them, never imported by them:
``comparison`` (comparing weight-averaging methods) and ``studies`` (the toy
task, decision boundaries, loss landscapes, the baselines' optimizer and
schedule).
"""
from . import compat, resume  # noqa: F401  (registers the loops)
from .ema import FusedEMA
from .hooks import SwitchEMAHook
from .sharding.fsdp2_strategy import FSDP2Strategy
from .version import __version__

compat.apply()

__all__ = ['SwitchEMAHook', 'FusedEMA', 'FSDP2Strategy', '__version__']
