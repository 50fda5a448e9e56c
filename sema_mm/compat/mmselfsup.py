"""Let mmselfsup 1.0.0 build its training loop with mmengine 0.10.7.

mmselfsup 1.0.0 declares its ``RUNNERS`` and ``LOOPS`` registries with
``locations=['mmselfsup.engine.runner']``, a module the package does not ship
(it has no runner or loop of its own). mmengine 0.10.7 imports a registry's
locations the first time the registry is searched, so building any loop
under the mmselfsup scope (every pre-training config) fails with
``ModuleNotFoundError: No module named 'mmselfsup.engine.runner'``.

Importing this module (the configs of ``configs/selfsup_mmselfsup`` list it in
``custom_imports``) registers an empty module under that name when the real
one cannot be imported, so the search goes on to mmengine's loops, as
mmselfsup intends. Nothing of mmselfsup is changed.
"""
import importlib
import sys
import types

MISSING = 'mmselfsup.engine.runner'


def ensure_mmselfsup_runner_module() -> bool:
    """Register an empty ``mmselfsup.engine.runner`` if it is missing.

    Returns:
        bool: Whether the placeholder was registered.
    """
    if MISSING in sys.modules:
        return False
    try:
        importlib.import_module(MISSING)
        return False
    except ModuleNotFoundError as e:
        if e.name not in (MISSING, 'mmselfsup.engine', 'mmselfsup'):
            raise
        if e.name != MISSING:
            return False  # mmselfsup itself is not installed
    sys.modules[MISSING] = types.ModuleType(
        MISSING, 'Placeholder registered by sema_mm: mmselfsup 1.0.0 names '
        'this module as the location of its loops but does not ship it.')
    return True


ensure_mmselfsup_runner_module()
