"""Atomic checkpoint files: a checkpoint is complete or absent.

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

:func:`sema_mm.cli.resume.resolve_auto_resume` relies on this when it picks
the checkpoint ``--resume auto`` resumes from.
"""
import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend


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
