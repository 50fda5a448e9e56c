"""Which checkpoint ``--resume auto`` resumes from.

mmengine records the latest checkpoint's name in ``work_dir/last_checkpoint``.
A run killed at the wrong moment can leave that record naming a file that
does not exist; :func:`resolve_auto_resume` then falls back to the newest
complete checkpoint (checkpoint files are written atomically, see
:mod:`sema_mm.compat.atomic_checkpoints`).
"""
import glob
import logging
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log


def resolve_auto_resume(cfg: Config) -> None:
    """For ``resume=True`` without ``load_from``, set ``load_from`` to the
    checkpoint to resume from (the one
    ``last_checkpoint`` names if it exists, else the newest ``epoch_*.pth`` /
    ``iter_*.pth``); leave the config
    as it is when the work dir has none."""
    if not cfg.get('resume') or cfg.get('load_from'):
        return
    work_dir = cfg.get('work_dir')
    if not work_dir:
        return
    named: Optional[str] = None
    record = osp.join(work_dir, 'last_checkpoint')
    if osp.exists(record):
        with open(record) as f:
            named = f.read().strip()
    if named and osp.isfile(named):
        cfg.load_from = named
        return
    found = glob.glob(osp.join(work_dir, 'epoch_*.pth')) + glob.glob(
        osp.join(work_dir, 'iter_*.pth'))
    if not found:
        return
    cfg.load_from = max(found, key=osp.getmtime)
    print_log(
        f'`last_checkpoint` in {work_dir} names {named!r}, which does not '
        f'exist; resuming from the newest checkpoint, {cfg.load_from}.',
        logger='current', level=logging.WARNING)
