"""Small text and JSON records kept next to results.

A run's status files (``started.json``, ``finished.json``), a comparison's
``results.json``, the written config of a run and a dataset's metadata are
written atomically (a temporary file in the same folder, renamed over the
target), so a record is either complete or absent, and read back as
``None`` when it is missing or unreadable.
"""
import json
import os
from typing import Any, Optional


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def write_json(path: str, data: Any, indent: Optional[int] = 1) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=indent))


def read_json(path: str) -> Optional[Any]:
    """The JSON data in ``path``, or None if it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
