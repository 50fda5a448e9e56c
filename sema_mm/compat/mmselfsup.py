"""Let mmselfsup 1.0.0 configs build and train with mmengine 0.10.7.

Two problems, both handled without changing anything of mmselfsup:

1. **A missing module.** mmselfsup 1.0.0 declares its ``RUNNERS`` and
   ``LOOPS`` registries with ``locations=['mmselfsup.engine.runner']``, a
   module the package does not ship (it has no runner or loop of its own).
   mmengine 0.10.7 imports a registry's locations the first time the
   registry is searched, so building any loop under the mmselfsup scope
   (every pre-training config) fails with ``ModuleNotFoundError: No module
   named 'mmselfsup.engine.runner'``. Importing this module (the configs of
   ``configs/selfsup_mmselfsup`` list it in ``custom_imports``) registers an
   empty module under that name when the real one cannot be imported, so
   the search goes on to mmengine's loops, as mmselfsup intends.
2. **Benchmarks tagged with the wrong scope.** mmselfsup's evaluation
   benchmarks (``benchmarks/classification/...``) are written for its own
   tree with the default scope ``mmcls``. A config that inherits one through
   ``mmselfsup::`` gets every outer dict with a ``type`` tagged
   ``_scope_='mmselfsup'`` by mmengine, where mmcls's classifier, datasets,
   metrics and loop are not registered, and mmengine 0.10.7 passes the tag
   of ``collate_fn`` on to ``default_collate`` (``TypeError``).
   :class:`MMSelfSupBenchmarkRunner` (``runner_type`` of
   ``configs/selfsup_mmselfsup/_base_/mmcls_benchmark.py``) builds the dicts
   of :data:`BUILT_IN_DEFAULT_SCOPE` in the config's default scope again and
   drops the tag of the loaders' ``collate_fn``; everything else (optimizer,
   schedulers, samplers, hooks) keeps its scope. mmengine forbids a key in
   two ``_base_`` files, so this cannot be a shared config of overrides: each
   benchmark inherits a different upstream config that defines those keys.
"""
import copy
import importlib
import sys
import types

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

MISSING = 'mmselfsup.engine.runner'
#: The scope mmengine tags the dicts of a ``mmselfsup::`` base with.
INHERITED_SCOPE = 'mmselfsup'
#: Dicts of a benchmark config the runner builds in its default scope (the
#: ``_scope_`` upstream meant) when they carry :data:`INHERITED_SCOPE`.
BUILT_IN_DEFAULT_SCOPE = ('model', 'train_dataloader.dataset',
                          'val_dataloader.dataset', 'test_dataloader.dataset',
                          'val_evaluator', 'test_evaluator', 'train_cfg')
#: Loaders whose ``collate_fn`` loses an :data:`INHERITED_SCOPE` tag.
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


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


def _find(cfg: Config, dotted: str):
    """The dict at ``dotted`` (e.g. ``'train_dataloader.dataset'``) in
    ``cfg``, or None."""
    first, *rest = dotted.split('.')
    node = cfg.get(first)
    for key in rest:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def rescope_benchmark(cfg: Config) -> Config:
    """A copy of a benchmark config with the tags of its ``mmselfsup::``
    base undone where upstream meant the default scope.

    Args:
        cfg (Config): A config inheriting a benchmark of mmselfsup 1.0.0
            (``default_scope`` ``'mmcls'``) through ``mmselfsup::``.

    Returns:
        Config: The copy: the dicts of :data:`BUILT_IN_DEFAULT_SCOPE` that
        carry ``_scope_='mmselfsup'`` get ``_scope_=cfg.default_scope``, the
        loaders' ``collate_fn`` loses that tag; ``cfg`` is left as it is.
    """
    cfg = copy.deepcopy(cfg)
    scope = cfg.get('default_scope')
    for dotted in BUILT_IN_DEFAULT_SCOPE:
        node = _find(cfg, dotted)
        if node is not None and node.get('_scope_') == INHERITED_SCOPE:
            node['_scope_'] = scope
    for loader in LOADERS:
        collate = _find(cfg, f'{loader}.collate_fn')
        if collate is not None and collate.get('_scope_') == INHERITED_SCOPE:
            collate.pop('_scope_')
    return cfg


@RUNNERS.register_module()
class MMSelfSupBenchmarkRunner(Runner):
    """mmengine's Runner for a config inheriting an mmselfsup 1.0.0
    benchmark through ``mmselfsup::``: it builds from
    :func:`rescope_benchmark` of the config, otherwise unchanged."""

    @classmethod
    def from_cfg(cls, cfg: Config) -> Runner:
        """Build the runner from the re-scoped ``cfg``.

        Args:
            cfg (Config): The full config (``runner_type`` names this class).

        Returns:
            Runner: The runner.
        """
        return super().from_cfg(rescope_benchmark(cfg))


ensure_mmselfsup_runner_module()
