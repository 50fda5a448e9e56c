"""Which checkpoint ``--resume auto`` resumes from.

mmengine records the latest checkpoint's name in ``work_dir/last_checkpoint``
and resumes from that file. :func:`resolve_auto_resume` takes it only if it
can be read: it skips a checkpoint that does not exist or that a cheap look
(:func:`checkpoint_problem`, no load) finds cut short or not a checkpoint,
says so for each one, and resumes from the newest readable one instead.
sema_mm writes checkpoints atomically
(:mod:`sema_mm.compat.atomic_checkpoints`), so its own runs leave no cut
files; a checkpoint copied in part, written by another program, or cut by a
full disk is caught here before any training time is spent.
"""
import glob
import logging
import os.path as osp
import zipfile
from typing import List, Optional, Tuple

from mmengine.config import Config
from mmengine.logging import print_log

#: How a checkpoint saved by ``torch.save`` begins: a zip archive (torch's
#: format since 1.6) or, in the legacy format, a pickle (protocol 2).
ZIP_MAGIC = b'PK\x03\x04'
LEGACY_MAGIC = b'\x80\x02'


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be resumed from, or None if it looks complete.

    A cheap check that reads the file's first bytes and, for torch's zip
    format, its central directory at the end (a cut file has none), never
    the tensors: a file damaged inside, with an intact end, is not caught.
    A legacy-format (non-zip) checkpoint is taken as it is.

    Args:
        path (str): The checkpoint file.

    Returns:
        str, optional: E.g. ``'it is cut short (no zip central
        directory)'``.
    """
    try:
        with open(path, 'rb') as f:
            head = f.read(4)
    except OSError as e:
        return f'it cannot be read ({e.strerror or e})'
    if not head:
        return 'it is empty'
    if head.startswith(LEGACY_MAGIC):
        return None
    if head != ZIP_MAGIC:
        return 'it is not a torch checkpoint (neither a zip archive nor a ' \
            'pickle)'
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        return f'it is cut short or damaged (no readable zip central ' \
            f'directory: {e})'
    if not any(n.endswith('data.pkl') for n in names):
        return 'it is a zip archive without data.pkl, not a torch checkpoint'
    return None


def _candidates(work_dir: str, named: Optional[str]) -> List[str]:
    """The checkpoint ``last_checkpoint`` names, then ``epoch_*.pth`` and
    ``iter_*.pth`` of ``work_dir``, newest (modification time) first."""
    found = glob.glob(osp.join(work_dir, 'epoch_*.pth')) + glob.glob(
        osp.join(work_dir, 'iter_*.pth'))
    found.sort(key=osp.getmtime, reverse=True)
    if named:
        found = [named] + [p for p in found
                           if osp.abspath(p) != osp.abspath(named)]
    return found


def resolve_auto_resume(cfg: Config) -> None:
    """For ``resume=True`` without ``load_from``, set ``load_from`` to the
    checkpoint to resume from: the one ``last_checkpoint`` names if it is
    readable, else the newest readable ``epoch_*.pth`` / ``iter_*.pth``
    (each one skipped is named in a warning, with the reason). The config
    is left as it is when the work dir has no checkpoint and no
    ``last_checkpoint``.

    Raises:
        RuntimeError: When there are checkpoints (or a ``last_checkpoint``)
            but none can be resumed from.
    """
    if not cfg.get('resume') or cfg.get('load_from'):
        return
    work_dir = cfg.get('work_dir')
    if not work_dir:
        return
    named: Optional[str] = None
    record = osp.join(work_dir, 'last_checkpoint')
    if osp.exists(record):
        with open(record) as f:
            named = f.read().strip() or None
    skipped: List[Tuple[str, str]] = []
    for path in _candidates(work_dir, named):
        problem = 'it does not exist' if not osp.isfile(path) else \
            checkpoint_problem(path)
        if problem is None:
            break
        skipped.append((path, problem))
        print_log(f'--resume: skipping the checkpoint {path}: {problem}.',
                  logger='current', level=logging.WARNING)
    else:
        if skipped:
            raise RuntimeError(
                f'--resume: no readable checkpoint in {work_dir}: ' +
                '; '.join(f'{p}: {why}' for p, why in skipped) +
                '. Move them (and `last_checkpoint`) away to train from '
                'scratch, or resume from another checkpoint with --resume '
                'PATH.')
        return
    cfg.load_from = path
    if skipped:
        print_log(f'--resume: resuming from {path}, the newest readable '
                  f'checkpoint of {work_dir}.', logger='current',
                  level=logging.WARNING)
