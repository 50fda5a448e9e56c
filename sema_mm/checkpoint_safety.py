"""Load mmengine checkpoints with ``torch.load(weights_only=True)``.

Since torch 2.6, ``torch.load`` unpickles only allow-listed types by default.
mmengine 0.10.7 checkpoints also hold its log history (``HistoryBuffer``, numpy
arrays and scalars), so resuming, ``load_from`` and testing fail there. Instead
of turning ``weights_only`` off, which would let a checkpoint run arbitrary
code, importing sema_mm allow-lists exactly the types mmengine writes:

* ``mmengine.logging.HistoryBuffer``;
* numpy arrays, dtypes and scalars (what ``HistoryBuffer`` stores);
* ``getattr`` *restricted* to ``HistoryBuffer``'s own statistics methods (a
  pickled ``HistoryBuffer`` refers to them as ``getattr(HistoryBuffer,
  'mean')``); any other ``getattr`` in a file is refused.

A local checkpoint holding anything else fails with an error that names the
offending types and what to do.
"""
import pickle
from typing import Any, Callable, List

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader, load_from_local

_RESTRICTED_GETATTR_NAME = 'builtins.getattr'


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """``getattr`` limited to the statistics methods of HistoryBuffer."""
    if obj is HistoryBuffer and isinstance(name, str) and (
            name in HistoryBuffer._statistics_methods
            or name in ('min', 'max', 'current', 'mean')):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint; only '
        'the statistics methods of mmengine HistoryBuffer are.')


def _numpy_globals() -> List:
    """The numpy callables and types a pickled array or scalar refers to,
    under the module path of the installed numpy and of numpy 1.x."""
    # numpy 2 moved numpy.core to numpy._core; 1.26 has a forwarding stub.
    from numpy._core import multiarray
    reconstruct, scalar = multiarray._reconstruct, multiarray.scalar
    names = []
    for prefix in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        names += [(reconstruct, f'{prefix}._reconstruct'),
                  (scalar, f'{prefix}.scalar')]
    dtype_classes = [
        type(np.dtype(t)) for t in (np.bool_, np.int8, np.int16, np.int32,
                                    np.int64, np.uint8, np.float16,
                                    np.float32, np.float64)
    ]
    return names + [np.ndarray, np.dtype] + dtype_classes


def mmengine_checkpoint_globals() -> List:
    """Everything :func:`allow_mmengine_checkpoints` allow-lists."""
    return [HistoryBuffer, (_history_buffer_getattr, _RESTRICTED_GETATTR_NAME)
            ] + _numpy_globals()


def load_from_local_safe(filename: str, map_location=None):
    """mmengine's local loader, with a clear error for disallowed types."""
    try:
        return load_from_local(filename, map_location)
    except pickle.UnpicklingError as e:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(
            filename)
        allowed = {
            f'{g.__module__}.{g.__qualname__}' if not isinstance(g, tuple)
            else g[1]
            for g in mmengine_checkpoint_globals()
        }
        extra = [g for g in unsafe if g not in allowed] or [str(e)]
        raise pickle.UnpicklingError(
            f'Refusing to load {filename}: it holds objects that '
            f'torch.load(weights_only=True) does not allow: {extra}. '
            'sema_mm allows exactly what mmengine checkpoints hold. If you '
            'wrote this file and these types are safe, allow them with '
            '`torch.serialization.add_safe_globals([...])` before loading; '
            'never load a file you did not write with weights_only=False.'
        ) from e


def allow_mmengine_checkpoints() -> None:
    """Allow-list mmengine's checkpoint types and install the clear-error
    local loader. Called once when sema_mm is imported."""
    if not hasattr(torch.serialization, 'add_safe_globals'):
        return  # torch < 2.4 loads without weights_only by default
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_safe, force=True)
