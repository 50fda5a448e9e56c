"""Crash-safe checkpoint files for ``--resume auto``.

mmengine 0.10.7 writes a checkpoint by serialising it in memory and then
writing the bytes straight into ``epoch_N.pth`` (``LocalBackend.put``), and
records its name in ``work_dir/last_checkpoint`` with a plain ``open``. A run
killed during the write leaves a truncated checkpoint behind (or a truncated
``last_checkpoint``), which auto-resume then picks and fails on.

* :class:`AtomicLocalBackend` replaces mmengine's local file backend when
  sema_mm is imported: every ``put`` writes a temporary file in the same
  folder, flushes it to disk and renames it over the target
  (``os.replace`` is atomic on POSIX), so a checkpoint file either is complete
  or does not exist.
* :func:`resolve_auto_resume` picks the checkpoint ``--resume auto`` resumes
  from: the one ``last_checkpoint`` names if that file exists, otherwise the
  newest ``epoch_*.pth`` / ``iter_*.pth`` in the work dir, with a warning.
"""
import glob
import logging
import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import Optional, Union

from mmengine.config import Config
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import print_log


class AtomicLocalBackend(LocalBackend):
    """mmengine's local backend with atomic ``put``."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write ``obj`` to a temporary file, then rename it to
        ``filepath``."""
        folder = osp.dirname(osp.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=folder, prefix=f'.{osp.basename(filepath)}.', suffix='.tmp')
        try:
            with os.fdopen(fd, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise


def use_atomic_local_writes() -> None:
    """Make :class:`AtomicLocalBackend` mmengine's local backend."""
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')


def resolve_auto_resume(cfg: Config) -> None:
    """For ``resume=True`` without ``load_from``, set ``load_from`` to the
    checkpoint to resume from (see the module docstring); leave the config
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
