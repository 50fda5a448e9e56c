"""mmengine's local checkpoint loading never runs code from the file.

A pickle can name any importable callable, and unpickling calls it: a
checkpoint loaded with ``torch.load(weights_only=False)`` can run arbitrary
code. mmengine 0.10.7 loads local checkpoints (``--resume``, ``load_from``,
testing) with torch's default, which is ``weights_only=False`` before torch
2.6; from 2.6 on the default ``weights_only=True`` refuses mmengine's own log
history (``HistoryBuffer``, numpy arrays and scalars) instead.

Importing sema_mm replaces mmengine's local checkpoint loader with
:func:`load_from_local_safe`, which on every supported torch unpickles only
an allow-list: what torch's own weights-only unpickler allows (tensors,
storages, ordered dicts, dtypes, ...) plus exactly what mmengine writes:

* ``mmengine.logging.HistoryBuffer``;
* numpy arrays, dtypes and scalars (what ``HistoryBuffer`` stores);
* ``getattr`` *restricted* to ``HistoryBuffer``'s own statistics methods (a
  pickled ``HistoryBuffer`` refers to them as ``getattr(HistoryBuffer,
  'mean')``) and to ``ShardedTensor.ProcessGroupState`` (in FSDP's per-rank
  checkpoints); any other ``getattr`` in a file is refused.
* the classes of FSDP1's per-rank checkpoints (``ShardedTensor`` and its
  metadata, :func:`sharded_tensor_globals`).

Where torch has ``torch.serialization.add_safe_globals`` (2.4 and later) the
list is registered there and files are loaded with ``weights_only=True``;
on older torch :data:`RESTRICTED_PICKLE`, an unpickler that refuses every
global outside the same list, is passed to ``torch.load`` as its
``pickle_module``. A local checkpoint holding anything else fails with an
error that names the refused globals and how to load a file you trust.
"""
import _compat_pickle
import codecs
import collections
import functools
import os.path as osp
import pickle
import types
from typing import Any, Callable, Dict, List

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

HAS_SAFE_GLOBALS = hasattr(torch.serialization, 'add_safe_globals')

_RESTRICTED_GETATTR_NAME = 'builtins.getattr'


def sharded_tensor_globals() -> List:
    """The classes a pickled FSDP1 local state dict (``ShardedTensor``)
    names: torch's own data classes, whose unpickling only validates ranks
    and shapes."""
    try:
        from torch.distributed._shard.metadata import ShardMetadata
        from torch.distributed._shard.sharded_tensor import api, metadata
        from torch.distributed._shard.sharded_tensor.shard import Shard
        from torch.distributed._shard.sharding_spec import ChunkShardingSpec
        from torch.distributed.remote_device import _remote_device
    except ImportError:  # pragma: no cover - torch without distributed
        return []
    return [
        api.ShardedTensor, api.ShardedTensorBase,
        api.ShardedTensor.ProcessGroupState, metadata.ShardedTensorMetadata,
        metadata.TensorProperties, metadata.MEM_FORMAT_ENCODING, Shard,
        ShardMetadata, ChunkShardingSpec, _remote_device
    ]


def _is_sharded_tensor(obj: Any) -> bool:
    """Whether ``obj`` is torch's ``ShardedTensor`` class (compared by
    name, so torch.distributed is not imported for it)."""
    return (getattr(obj, '__qualname__', None) == 'ShardedTensor'
            and getattr(obj, '__module__', '').startswith(
                'torch.distributed._shard.sharded_tensor'))


def _restricted_getattr(obj: Any, name: str) -> Callable:
    """``getattr`` limited to the statistics methods of HistoryBuffer and
    ``ShardedTensor.ProcessGroupState`` (a tuple of ranks and world sizes
    in FSDP's per-rank state dicts)."""
    if obj is HistoryBuffer and isinstance(name, str) and (
            name in HistoryBuffer._statistics_methods
            or name in ('min', 'max', 'current', 'mean')):
        return getattr(HistoryBuffer, name)
    if _is_sharded_tensor(obj) and name == 'ProcessGroupState':
        return obj.ProcessGroupState
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint; only '
        'the statistics methods of mmengine HistoryBuffer and '
        'ShardedTensor.ProcessGroupState are.')


def _numpy_globals() -> List:
    """The numpy callables and types a pickled array or scalar refers to,
    under the module path of the installed numpy and of numpy 1.x."""
    # numpy 2 moved numpy.core to numpy._core; 1.26 has a forwarding stub,
    # older releases only numpy.core.
    try:
        from numpy._core import multiarray
    except ImportError:
        from numpy.core import multiarray
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
    """Everything :func:`allow_mmengine_checkpoints` allow-lists.

    Besides mmengine's and numpy's types: ``_codecs.encode`` (how pickle
    protocol 2, torch.save's, writes bytes, e.g. in a numpy array) and
    ``collections.Counter`` (the milestones of ``MultiStepLR``), which
    newer torch allows by default and torch 2.0 does not.
    """
    return [
        HistoryBuffer, (_restricted_getattr, _RESTRICTED_GETATTR_NAME),
        (codecs.encode, '_codecs.encode'), collections.Counter
    ] + _numpy_globals()


def _name(entry: Any) -> str:
    """The pickle name of an allow-list entry (an object or (obj, name))."""
    if isinstance(entry, tuple):
        return entry[1]
    return f'{entry.__module__}.{entry.__qualname__}'


@functools.lru_cache(maxsize=None)
def _allowed_globals() -> Dict[str, Any]:
    """Pickle name -> object: torch's weights-only list plus mmengine's and
    the classes of FSDP1's local state dicts (which torch >= 2.4 gets as
    safe globals of :func:`sharded_tensor_globals`)."""
    from torch import _weights_only_unpickler
    allowed = dict(_weights_only_unpickler._get_allowed_globals())
    for entry in mmengine_checkpoint_globals() + sharded_tensor_globals():
        allowed[_name(entry)] = entry[0] if isinstance(entry,
                                                       tuple) else entry
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals."""

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 2 (torch.save's) writes Python 2 names, e.g.
        # __builtin__.getattr; map them as pickle's own find_class does.
        module, name = _compat_pickle.NAME_MAPPING.get(
            (module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        allowed = _allowed_globals()
        key = f'{module}.{name}'
        if key not in allowed:
            raise pickle.UnpicklingError(
                f'Unsupported global: GLOBAL {key} is not an allowed global '
                '(sema_mm restricted unpickler).')
        return allowed[key]


#: ``torch.load(..., pickle_module=RESTRICTED_PICKLE)`` on torch < 2.4.
RESTRICTED_PICKLE = types.ModuleType(
    'sema_mm_restricted_pickle',
    'The pickle module sema_mm gives torch.load on torch < 2.4.')
RESTRICTED_PICKLE.Unpickler = RestrictedUnpickler
RESTRICTED_PICKLE.load = lambda f, **kw: RestrictedUnpickler(f, **kw).load()
RESTRICTED_PICKLE.UnpicklingError = pickle.UnpicklingError


def _unsafe_globals(filename: str, error: Exception) -> List[str]:
    """The globals of ``filename`` that are not allowed."""
    find = getattr(torch.serialization, 'get_unsafe_globals_in_checkpoint',
                   None)
    if find is None:
        return [str(error)]
    allowed = set(_allowed_globals())
    return [g for g in find(filename) if g not in allowed] or [str(error)]


def load_from_local_safe(filename: str, map_location=None):
    """Load a local checkpoint with the allow-list, never running code.

    Raises:
        pickle.UnpicklingError: The file names a global outside the list;
            the message names it and says how to load a trusted file.
    """
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        if HAS_SAFE_GLOBALS:
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
        return torch.load(filename, map_location=map_location,
                          pickle_module=RESTRICTED_PICKLE)
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(
            f'Refusing to load {filename}: it holds objects that sema_mm\'s '
            'safe checkpoint loading does not allow: '
            f'{_unsafe_globals(filename, e)}. sema_mm allows exactly what '
            'torch\'s weights-only loading and mmengine checkpoints hold. If '
            'you wrote this file and these types are safe, allow them with '
            '`torch.serialization.add_safe_globals([...])` (torch >= 2.4) '
            'before loading, or load it yourself with `torch.load(path, '
            'weights_only=False)` and save the tensors you need; never load '
            'a file you did not write with weights_only=False.') from e


def allow_mmengine_checkpoints() -> None:
    """Allow-list mmengine's checkpoint types and FSDP1's local state dicts
    (:func:`sharded_tensor_globals`) and install the safe local loader.
    Called once when sema_mm is imported."""
    if HAS_SAFE_GLOBALS:
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals() +
                                             sharded_tensor_globals())
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_safe, force=True)
