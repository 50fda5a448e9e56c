"""Atomic checkpoint files: a checkpoint is complete or absent.

mmengine 0.10.7 writes a checkpoint by serialising it in memory and then
writing the bytes straight into ``epoch_N.pth`` (``LocalBackend.put``), and
records its name in ``work_dir/last_checkpoint`` with a plain ``open``. A run
killed during the write leaves a truncated checkpoint behind (or a truncated
``last_checkpoint``), which auto-resume then picks and fails on.

* :class:`AtomicLocalBackend` replaces mmengine's local file backend when
  sema_mm is imported: every ``put`` (checkpoints, and files written with
  ``mmengine.dump`` such as ``tools/test.py --out`` predictions) writes a
  temporary file in the same folder, flushes it to disk and renames it over
  the target (``os.replace`` is atomic on POSIX), so the file either is
  complete or does not exist.
* The file gets the mode a plain ``open`` would give it: ``0o666`` less the
  process's umask (``0o644`` under umask ``022``, ``0o640`` under ``027``),
  as mmengine's own backend writes it. The temporary file is created with
  ``os.open(..., O_CREAT | O_EXCL, 0o666)``, so the kernel applies the
  umask (and a default ACL of the folder, where there is one), not the
  ``0o600`` of :func:`tempfile.mkstemp`.

:func:`sema_mm.cli.resume.resolve_auto_resume` relies on this when it picks
the checkpoint ``--resume auto`` resumes from.
"""
import os
import os.path as osp
import uuid
from pathlib import Path
from typing import Tuple, Union

from mmengine.fileio import LocalBackend, register_backend


def _temporary_file(folder: str, name: str) -> Tuple[int, str]:
    """Create a new, empty, hidden file ``.<name>.<random>.tmp`` in
    ``folder`` with the mode the umask gives (``0o666 & ~umask``).

    Returns:
        tuple: The file descriptor (open for writing) and the path.
    """
    while True:
        path = osp.join(folder, f'.{name}.{uuid.uuid4().hex[:12]}.tmp')
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # another writer drew the same name
            continue
        return fd, path


class AtomicLocalBackend(LocalBackend):
    """mmengine's local backend with atomic ``put``."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write ``obj`` to a temporary file, then rename it to
        ``filepath``."""
        folder = osp.dirname(osp.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = _temporary_file(folder, osp.basename(filepath))
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
