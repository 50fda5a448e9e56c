"""Give a config's ``train_cfg`` the resumable loops.

:func:`use_resumable_loop` is applied by sema_mm's tools
(:func:`sema_mm.cli.build_runner`, used by ``tools/train.py`` and
``tools/compare.py``, and ``tools/demo.py``): mmengine's
``EpochBasedTrainLoop`` and ``IterBasedTrainLoop`` (``by_epoch=True/False``,
or ``type`` as a name, with or without a scope, or as the class) become
:class:`~.loops.ResumableEpochBasedTrainLoop` and
:class:`~.loops.ResumableIterBasedTrainLoop`, with the same arguments.
Other loop types (a codebase's or the user's own) are left as they are. A
script of one's own gets them with
``train_cfg=dict(type='ResumableEpochBasedTrainLoop', ...)`` after
``import sema_mm``.
"""
from typing import Optional

from mmengine.config import Config
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from .loops import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop

_REPLACEMENTS = {
    'EpochBasedTrainLoop': ResumableEpochBasedTrainLoop.__name__,
    'IterBasedTrainLoop': ResumableIterBasedTrainLoop.__name__,
}


def _replacement(loop_type) -> Optional[str]:
    """The resumable loop's name for mmengine's loop ``loop_type``."""
    if loop_type is EpochBasedTrainLoop:
        return ResumableEpochBasedTrainLoop.__name__
    if loop_type is IterBasedTrainLoop:
        return ResumableIterBasedTrainLoop.__name__
    if isinstance(loop_type, str):
        scope, _, name = loop_type.rpartition('.')
        if scope in ('', 'mmengine'):
            return _REPLACEMENTS.get(name)
    return None


def use_resumable_loop(cfg: Config) -> bool:
    """Replace mmengine's training loop in ``cfg.train_cfg`` in place.

    Args:
        cfg (Config): The full config.

    Returns:
        bool: Whether the loop was replaced.
    """
    train_cfg = cfg.get('train_cfg')
    if not train_cfg:
        return False
    if 'type' in train_cfg:
        new = _replacement(train_cfg['type'])
    elif 'by_epoch' in train_cfg:
        new = _replacement('EpochBasedTrainLoop' if train_cfg['by_epoch']
                           else 'IterBasedTrainLoop')
    else:
        new = None
    if new is None:
        return False
    train_cfg.pop('by_epoch', None)
    train_cfg['type'] = new
    return True
