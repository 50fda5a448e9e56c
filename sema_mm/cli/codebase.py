"""What each OpenMMLab codebase's ``tools/train.py`` and ``tools/test.py`` do.

sema_mm's ``tools/train.py`` and ``tools/test.py`` run mmdet, mmpretrain,
mmcls, mmselfsup and plain mmengine configs. The codebase is read from the
config's ``default_scope`` and the behaviour of that codebase's own scripts
(mmdet 3.3.0, mmpretrain 1.2.0, mmcls 1.0.0rc6, mmselfsup 1.0.0) comes from
one row of :data:`CODEBASES`:

* ``--amp`` sets ``optim_wrapper.type='AmpOptimWrapper'``; mmdet *forces*
  ``loss_scale='dynamic'``, the others only default it; mmcls and mmselfsup
  (and plain mmengine configs here) first check that the wrapper is
  ``OptimWrapper`` or ``AmpOptimWrapper``.
* mmpretrain and mmcls default every dataloader of ``train.py`` to
  ``pin_memory=True, persistent_workers=True,
  collate_fn=dict(type='default_collate')``, and the ``test_dataloader`` of
  ``test.py`` to ``pin_memory=True, collate_fn=...``. Unlike upstream,
  ``persistent_workers`` is not defaulted on for a loader with
  ``num_workers=0``, which torch's ``DataLoader`` refuses.
* mmdet calls ``mmdet.utils.setup_cache_size_limit_of_dynamo()`` first, and
  its ``--out`` dumps with ``DumpDetResults``.

Common to all: ``--work-dir`` beats the config's ``work_dir``, which beats
``./work_dirs/<config file stem>`` (mmselfsup's own script takes the second
component of the config path, which fails on a bare file name; that is not
repeated here); ``--resume auto`` resumes from the latest checkpoint of the
work dir, ``--resume PATH`` from ``PATH``; ``--cfg-options`` is merged last,
so it overrides everything else.
"""
import argparse
import copy
import importlib
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

from mmengine.config import Config, ConfigDict
from mmengine.evaluator import BaseMetric

PRETRAIN_DATALOADER_DEFAULTS = dict(
    pin_memory=True,
    persistent_workers=True,
    collate_fn=dict(type='default_collate'))
PRETRAIN_TEST_DATALOADER_DEFAULTS = dict(
    pin_memory=True, collate_fn=dict(type='default_collate'))


def _mmdet_setup() -> None:
    """mmdet's scripts raise the torch dynamo cache size limit first."""
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    setup_cache_size_limit_of_dynamo()


@dataclass(frozen=True)
class Codebase:
    """Upstream script behaviour of one OpenMMLab codebase.

    Args:
        name (str): The ``default_scope`` it is selected by.
        package (str, optional): Package that must import for its configs;
            None for plain mmengine configs.
        amp_forces_loss_scale (bool): ``--amp`` overwrites ``loss_scale``
            with ``'dynamic'`` (mmdet) instead of only defaulting it.
        amp_wrappers (tuple[str], optional): ``optim_wrapper`` types
            ``--amp`` accepts; None accepts any.
        dataloader_defaults (dict): Defaults under every dataloader config
            of ``tools/train.py``.
        test_dataloader_defaults (dict): Defaults under the
            ``test_dataloader`` of ``tools/test.py``.
        setup (Callable, optional): Called before the config is used.
        dump_metric (str): ``module:Class`` of the metric ``--out`` adds.
        install_hint (str): Appended to the error when ``package`` fails to
            import.
    """

    name: str
    package: Optional[str]
    amp_forces_loss_scale: bool = False
    amp_wrappers: Optional[Tuple[str, ...]] = ('OptimWrapper',
                                               'AmpOptimWrapper')
    dataloader_defaults: Dict = field(default_factory=dict)
    test_dataloader_defaults: Dict = field(default_factory=dict)
    setup: Optional[Callable[[], None]] = None
    dump_metric: str = 'mmengine.evaluator:DumpResults'
    install_hint: str = ''

    def require_installed(self, config_path: str = 'the config') -> None:
        """Import :attr:`package`, or fail with what to install.

        Raises:
            ImportError: The package is missing or refuses to import (e.g.
                its own version check of mmcv fails).
        """
        if self.package is None:
            return
        try:
            importlib.import_module(self.package)
        except Exception as e:  # ImportError, or a version assertion
            raise ImportError(
                f'{config_path} has default_scope={self.name!r}, so it needs '
                f'the {self.package} package, which could not be imported '
                f'({type(e).__name__}: {e}). Install it, e.g. `pip install '
                f'{self.package}`.'
                f'{self.install_hint}') from e

    def build_dump_metric(self, out_file: str) -> BaseMetric:
        """The metric that dumps test predictions to ``out_file`` (pkl)."""
        module, name = self.dump_metric.split(':')
        return getattr(importlib.import_module(module), name)(
            out_file_path=out_file)


CODEBASES: Dict[str, Codebase] = {
    'mmdet':
    Codebase(
        'mmdet',
        'mmdet',
        amp_forces_loss_scale=True,
        amp_wrappers=None,
        setup=_mmdet_setup,
        dump_metric='mmdet.evaluation:DumpDetResults'),
    'mmpretrain':
    Codebase(
        'mmpretrain',
        'mmpretrain',
        amp_wrappers=None,
        dataloader_defaults=PRETRAIN_DATALOADER_DEFAULTS,
        test_dataloader_defaults=PRETRAIN_TEST_DATALOADER_DEFAULTS),
    'mmcls':
    Codebase(
        'mmcls',
        'mmcls',
        dataloader_defaults=PRETRAIN_DATALOADER_DEFAULTS,
        test_dataloader_defaults=PRETRAIN_TEST_DATALOADER_DEFAULTS),
    'mmselfsup':
    Codebase(
        'mmselfsup',
        'mmselfsup',
        install_hint=' mmselfsup 1.0.0 needs mmcls 1.0.0rc6 and mmcv<2.1.0; '
        'its self-supervised algorithms are also in mmpretrain '
        "(default_scope='mmpretrain')."),
    'mmengine':
    Codebase('mmengine', None),
}


def get_codebase(cfg: Config) -> Codebase:
    """The :class:`Codebase` of ``cfg``, from its ``default_scope``.

    A scope not in :data:`CODEBASES` (e.g. ``'mmseg'``) gets the plain
    mmengine behaviour and must be importable as a package of that name.
    """
    scope = cfg.get('default_scope') or 'mmengine'
    return CODEBASES.get(scope, Codebase(scope, scope))


def default_work_dir(config_path: str) -> str:
    """``./work_dirs/<config file stem>``."""
    return osp.join('./work_dirs',
                    osp.splitext(osp.basename(config_path))[0])


def _enable_amp(cfg: Config, codebase: Codebase) -> None:
    """Switch ``cfg.optim_wrapper`` to ``AmpOptimWrapper`` as upstream."""
    optim_wrapper = cfg.optim_wrapper
    wrapper_type = optim_wrapper.get('type', 'OptimWrapper')
    if (codebase.amp_wrappers is not None
            and wrapper_type not in codebase.amp_wrappers):
        raise ValueError(
            f'`--amp` needs optim_wrapper.type in {codebase.amp_wrappers} '
            f'for {codebase.name} configs, but got {wrapper_type!r}.')
    optim_wrapper.type = 'AmpOptimWrapper'
    if codebase.amp_forces_loss_scale:
        optim_wrapper.loss_scale = 'dynamic'
    else:
        optim_wrapper.setdefault('loss_scale', 'dynamic')


def _apply_dataloader_defaults(cfg: Config, defaults: Dict,
                               fields: Tuple[str, ...]) -> None:
    """Put ``defaults`` under each of the dataloader configs ``fields``."""
    if not defaults:
        return
    for name in fields:
        if cfg.get(name) is None:
            continue
        loader = ConfigDict(copy.deepcopy(defaults))
        loader.update(cfg[name])
        if (loader.get('num_workers', 0) == 0
                and 'persistent_workers' not in cfg[name]):
            loader.persistent_workers = False
        cfg[name] = loader


def merge_common_args(cfg: Config, args: argparse.Namespace) -> None:
    """Apply ``--launcher`` and ``--work-dir`` (or the default work dir)."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = default_work_dir(args.config)


def merge_train_args(cfg: Config, args: argparse.Namespace) -> Codebase:
    """Merge the ``tools/train.py`` arguments into ``cfg`` in place.

    Args:
        cfg (Config): The loaded config.
        args (argparse.Namespace): ``config``, ``work_dir``, ``amp``,
            ``auto_scale_lr``, ``resume``, ``cfg_options`` and ``launcher``.

    Returns:
        Codebase: The codebase of ``cfg`` (its ``setup`` not yet called).
    """
    codebase = get_codebase(cfg)
    merge_common_args(cfg, args)
    if args.amp:
        _enable_amp(cfg, codebase)
    if args.auto_scale_lr:
        auto_scale_lr = cfg.get('auto_scale_lr')
        if not (isinstance(auto_scale_lr, dict)
                and 'base_batch_size' in auto_scale_lr):
            raise RuntimeError(
                '`--auto-scale-lr` needs `auto_scale_lr = dict('
                'base_batch_size=..., enable=False)` in the config: the '
                'total batch size its learning rate was set for.')
        auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    _apply_dataloader_defaults(
        cfg, codebase.dataloader_defaults,
        ('train_dataloader', 'val_dataloader', 'test_dataloader'))
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return codebase


def merge_test_args(cfg: Config, args: argparse.Namespace) -> Codebase:
    """Merge the ``tools/test.py`` arguments into ``cfg`` in place.

    Args:
        cfg (Config): The loaded config.
        args (argparse.Namespace): ``config``, ``checkpoint``, ``work_dir``,
            ``cfg_options`` and ``launcher``.

    Returns:
        Codebase: The codebase of ``cfg`` (its ``setup`` not yet called).
    """
    codebase = get_codebase(cfg)
    merge_common_args(cfg, args)
    cfg.load_from = args.checkpoint
    _apply_dataloader_defaults(cfg, codebase.test_dataloader_defaults,
                               ('test_dataloader', ))
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return codebase
