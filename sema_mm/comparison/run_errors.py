"""The exception a failed run ended with, read from its log.

A run trained by another process (a local job, a slurm job) leaves its
traceback in its log; the comparison's summary of a failed run names the
exception (the last line of the last traceback) next to the log's path, so
the reason is seen without opening the log.
"""
import os
import re
from typing import Optional

#: Bytes read from the end of a log.
TAIL_BYTES = 64 * 1024
#: ``[rank0]: `` and similar prefixes torchrun puts before each line.
RANK_PREFIX = re.compile(r'^\[[^\]]*rank\d+\]:\s?')


def last_exception(log_path: str) -> Optional[str]:
    """``'ValueError: ...'``: the exception line of the last traceback in
    the log at ``log_path``, or None (no log, no traceback)."""
    try:
        with open(log_path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL_BYTES))
            text = f.read().decode('utf-8', errors='replace')
    except OSError:
        return None
    lines = [RANK_PREFIX.sub('', line) for line in text.splitlines()]
    starts = [i for i, line in enumerate(lines)
              if line.startswith('Traceback (most recent call last)')]
    if not starts:
        return None
    for line in lines[starts[-1] + 1:]:
        if line.strip() and not line[0].isspace():
            return line.strip()
    return None
