"""Turn any mmengine config into the variants a comparison trains.

A *variant* is one way of training the same config: plain training
(``baseline``), an EMA of the weights evaluated and saved (``ema``), Switch
EMA (``sema``), stochastic weight averaging (``swa``) or the Lookahead
optimizer (``lookahead``). :func:`apply_variant` edits a loaded config in
place:

``baseline``
    Every EMA-type hook is dropped from ``custom_hooks`` (``EMAHook`` of
    mmengine, mmpretrain or mmdet, ``SwitchEMAHook``, or any hook registered
    as a subclass of mmengine's ``EMAHook``).
``ema``
    The EMA-type hooks are replaced by one ``EMAHook`` (the one registered in
    the config's scope) with the variant's momentum. A ``priority`` or
    ``ema_type`` of the hook it replaces is kept; otherwise the priority is
    ``'ABOVE_NORMAL'``, as in mmpretrain's configs.
``sema``
    The EMA-type hooks are replaced by one ``SwitchEMAHook`` with the
    variant's momentum (``priority`` and ``ema_type`` kept as for ``ema``).
``swa``
    The paper compares with SWA at a "1.25 budget". Here a budget ``b``
    means: the run is extended from ``E`` to ``b * E`` epochs (rounded, at
    least ``E + 1``; iterations for iteration-based loops); the config's
    own LR schedule is left as it is over the first ``E`` epochs; from
    epoch ``E`` on the LR is held at ``lr_ratio`` times each group's initial LR
    (:class:`~sema_mm.studies.lr_schedules.SWAConstantLR`) and the weights
    are averaged with equal weights after every iteration (mmengine's
    ``EMAHook(ema_type='StochasticWeightAverage', begin_epoch=E)``).
    Validation and checkpoints see the average. Normalisation statistics are
    averaged as well (``update_buffers=True``) instead of being recomputed
    from the data as in the original SWA. With ``b = 1`` the run keeps its
    length and averaging starts at ``start`` times the run length (default
    0.75), with the LR schedule unchanged.
``lookahead``
    ``optim_wrapper.optimizer`` becomes a
    :class:`~sema_mm.studies.lookahead.Lookahead` around the config's own
    optimizer (every 'k' steps the slow weights move a fraction ``alpha``
    towards the fast ones, which restart from them). EMA-type hooks are
    dropped, as for the baseline.

Options of a variant (``sema:momentum=0.01,interval=4``) go to the hook it
adds (``momentum``, ``interval``, ``switches_per_epoch``...), to the SWA
set-up (``budget``, ``lr_ratio``, ``start``) or to Lookahead (``k``,
``alpha``).
"""
import ast
import copy
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from mmengine.config import Config, ConfigDict
from mmengine.hooks import EMAHook
from mmengine.logging import print_log
from mmengine.registry import HOOKS, DefaultScope

KINDS = ('baseline', 'ema', 'sema', 'swa', 'lookahead')
DISPLAY = dict(baseline='baseline', ema='EMA', sema='SEMA', swa='SWA',
               lookahead='Lookahead')
EMA_HOOK_NAMES = ('EMAHook', 'SwitchEMAHook')
SWA_DEFAULTS = dict(budget=1.25, lr_ratio=0.1, start=0.75)
LOOKAHEAD_DEFAULTS = dict(k=5, alpha=0.5)
DEFAULT_MOMENTUM = 1e-3
SPLITS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


@dataclass
class Variant:
    """One way of training a config.

    Args:
        kind (str): One of :data:`KINDS`.
        options (dict): Keyword options (see the module docstring).
        spec (str): The text it was parsed from, e.g. ``'sema:interval=4'``.
    """

    kind: str
    options: Dict[str, Any] = field(default_factory=dict)
    spec: str = ''

    @property
    def label(self) -> str:
        """Name in tables and plots, e.g. ``'SEMA (interval=4)'``."""
        if not self.options:
            return DISPLAY[self.kind]
        opts = ', '.join(f'{k}={v}' for k, v in self.options.items())
        return f'{DISPLAY[self.kind]} ({opts})'

    @property
    def dirname(self) -> str:
        """Folder name of its runs, e.g. ``'sema_interval-4'``."""
        parts = [self.kind] + [
            f'{k}-{v}' for k, v in self.options.items()
        ]
        return re.sub(r'[^A-Za-z0-9_.+-]', '', '_'.join(parts))


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_variant(spec: str) -> Variant:
    """Parse ``KIND[:KEY=VALUE[,KEY=VALUE...]]`` (kind case-insensitive).

    Args:
        spec (str): E.g. ``'baseline'``, ``'SEMA'``, ``'sema:interval=4'``,
            ``'swa:budget=1.0,start=0.8'``.

    Returns:
        Variant: The parsed variant.

    Raises:
        ValueError: On an unknown kind or a malformed option.
    """
    kind, _, rest = spec.partition(':')
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise ValueError(
            f'unknown variant {kind!r} in {spec!r}; choose from {KINDS}')
    options: Dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(','))):
        key, eq, value = item.partition('=')
        if not eq or not key.strip():
            raise ValueError(
                f'variant option {item!r} in {spec!r} is not KEY=VALUE')
        options[key.strip()] = _parse_value(value.strip())
    if kind == 'baseline' and options:
        raise ValueError(f'the baseline takes no options, got {spec!r}')
    return Variant(kind, options, spec)


def _hook_class(hook_cfg: dict, scope: Optional[str]) -> Optional[type]:
    """The class a hook config builds, looked up in ``scope``."""
    hook_type = hook_cfg.get('type')
    if isinstance(hook_type, type):
        return hook_type
    if not isinstance(hook_type, str):
        return None
    try:
        if scope is not None:
            with DefaultScope.overwrite_default_scope(scope):
                return HOOKS.get(hook_type)
        return HOOKS.get(hook_type)
    except Exception:  # an unimportable scope: fall back to the name
        return None


def is_ema_hook(hook_cfg: dict, scope: Optional[str] = None) -> bool:
    """Whether a ``custom_hooks`` entry is an EMA-type hook.

    Args:
        hook_cfg (dict): One entry of ``custom_hooks``.
        scope (str, optional): The config's ``default_scope``.

    Returns:
        bool: True for mmengine's ``EMAHook`` and its subclasses (mmpretrain's
        ``EMAHook``, ``SwitchEMAHook``, ...), or, when the type cannot be
        resolved, for a type name in :data:`EMA_HOOK_NAMES`.
    """
    cls = _hook_class(hook_cfg, scope)
    if cls is not None:
        return issubclass(cls, EMAHook)
    name = hook_cfg.get('type')
    name = name if isinstance(name, str) else ''
    return name.split('.')[-1] in EMA_HOOK_NAMES


def ema_hooks(cfg: Config) -> List[dict]:
    """The EMA-type entries of ``cfg.custom_hooks``."""
    scope = cfg.get('default_scope')
    return [
        h for h in cfg.get('custom_hooks') or [] if is_ema_hook(h, scope)
    ]


def config_momentum(cfg: Config) -> Optional[float]:
    """The momentum of the config's own EMA-type hook, if it has one."""
    for hook in ema_hooks(cfg):
        if hook.get('momentum') is not None:
            return float(hook['momentum'])
    return None


def _without_ema_hooks(cfg: Config) -> Optional[dict]:
    """Drop the EMA-type hooks from ``cfg.custom_hooks``; return the first
    one dropped (or None)."""
    scope = cfg.get('default_scope')
    hooks = list(cfg.get('custom_hooks') or [])
    dropped = [h for h in hooks if is_ema_hook(h, scope)]
    cfg.custom_hooks = [h for h in hooks if not is_ema_hook(h, scope)]
    return dropped[0] if dropped else None


def set_epochs(cfg: Config, epochs: int) -> None:
    """Train for ``epochs`` epochs, stretching the LR schedule with them.

    Schedulers that end at the config's last epoch are made to end at
    ``epochs``, and a ``T_max`` that spans until then is changed likewise.

    Args:
        cfg (Config): An epoch-based config, edited in place.
        epochs (int): The new number of training epochs.
    """
    old = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = epochs
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for sched in schedulers:
        if sched.get('end') != old:
            continue
        sched['end'] = epochs
        begin = sched.get('begin', 0)
        if sched.get('T_max') == old - begin:
            sched['T_max'] = epochs - begin


def set_data_root(cfg: Config, data_root: str) -> None:
    """Point the datasets of every dataloader at ``data_root``."""
    cfg.data_root = data_root
    for split in SPLITS:
        if cfg.get(split) is not None:
            cfg[split].dataset.data_root = data_root


def is_epoch_based(cfg: Config) -> bool:
    """Whether ``cfg`` trains by epochs (``train_cfg.by_epoch`` or an
    ``EpochBasedTrainLoop``)."""
    train_cfg = cfg.get('train_cfg') or {}
    if 'type' in train_cfg:
        return 'Iter' not in str(train_cfg['type'])
    return bool(train_cfg.get('by_epoch', 'max_epochs' in train_cfg))


def _add_import(cfg: Config, module: str) -> None:
    """Add ``module`` to ``cfg.custom_imports``."""
    imports = cfg.get('custom_imports') or dict(
        imports=[], allow_failed_imports=False)
    names = imports.get('imports', [])
    names = [names] if isinstance(names, str) else list(names)
    if module not in names:
        names.append(module)
    imports['imports'] = names
    cfg.custom_imports = imports


def _hook_from(old: Optional[dict], hook_type: str, momentum: float,
               options: Dict[str, Any]) -> dict:
    """A new EMA-type hook config keeping ``old``'s priority and
    ``ema_type``."""
    hook = dict(type=hook_type, momentum=momentum)
    if old is not None:
        for key in ('priority', 'ema_type'):
            if key in old and old[key] != 'StochasticWeightAverage':
                hook[key] = copy.deepcopy(old[key])
    if hook_type == 'EMAHook':
        hook.setdefault('priority', 'ABOVE_NORMAL')
    hook.update(options)
    return hook


def _apply_swa(cfg: Config, options: Dict[str, Any]) -> None:
    """The SWA set-up described in the module docstring."""
    opts = dict(SWA_DEFAULTS)
    unknown = set(options) - set(opts) - {'interval'}
    if unknown:
        raise ValueError(f'unknown SWA options {sorted(unknown)}; use '
                         f'{sorted(opts)} (and interval)')
    opts.update(options)
    budget, lr_ratio = float(opts['budget']), float(opts['lr_ratio'])
    if budget < 1:
        raise ValueError(f'SWA budget must be >= 1, got {budget}')
    by_epoch = is_epoch_based(cfg)
    key = 'max_epochs' if by_epoch else 'max_iters'
    length = int(cfg.train_cfg[key])
    hook = dict(type='EMAHook', ema_type='StochasticWeightAverage',
                update_buffers=True, priority='ABOVE_NORMAL',
                interval=int(opts.get('interval', 1)))
    begin_key = 'begin_epoch' if by_epoch else 'begin_iter'
    if budget > 1:
        total = max(length + 1, int(math.floor(budget * length + 0.5)))
        cfg.train_cfg[key] = total
        hook[begin_key] = length
        schedulers = cfg.get('param_scheduler') or []
        if isinstance(schedulers, dict):
            schedulers = [schedulers]
        schedulers = list(schedulers) + [
            dict(type='SWAConstantLR', factor=lr_ratio, by_epoch=by_epoch,
                 begin=length, end=total)
        ]
        cfg.param_scheduler = schedulers
        _add_import(cfg, 'sema_mm.studies.lr_schedules')
    else:
        start = float(opts['start'])
        if not 0 <= start < 1:
            raise ValueError(f'SWA start must lie in [0, 1), got {start}')
        hook[begin_key] = int(start * length)
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [hook]


def _apply_lookahead(cfg: Config, options: Dict[str, Any]) -> None:
    """Wrap the config's optimizer in Lookahead."""
    opts = dict(LOOKAHEAD_DEFAULTS)
    unknown = set(options) - set(opts)
    if unknown:
        raise ValueError(f'unknown Lookahead options {sorted(unknown)}; '
                         f'use {sorted(opts)}')
    opts.update(options)
    wrapper = cfg.optim_wrapper
    if 'optimizer' not in wrapper:
        raise ValueError('Lookahead needs optim_wrapper.optimizer (a single '
                         'optimizer), which this config does not have')
    base = ConfigDict(copy.deepcopy(wrapper.optimizer))
    base_type = base.pop('type')
    if base_type == 'Lookahead':
        raise ValueError('the config already uses Lookahead')
    if not isinstance(base_type, str):
        raise ValueError('Lookahead needs a registered optimizer type name, '
                         f'got {base_type!r}')
    wrapper.optimizer = ConfigDict(
        type='Lookahead', base_type=base_type,
        lookahead_k=int(opts['k']), lookahead_alpha=float(opts['alpha']),
        **base)
    _add_import(cfg, 'sema_mm.studies.lookahead')


def apply_variant(cfg: Config, variant: Variant,
                  momentum: Optional[float] = None) -> Config:
    """Edit ``cfg`` in place so that it trains ``variant``.

    Args:
        cfg (Config): A loaded config.
        variant (Variant): What to train (see the module docstring).
        momentum (float, optional): EMA momentum (mmengine convention, the
            weight of the new weights) for ``ema`` and ``sema`` when the
            variant has no ``momentum`` option. Defaults to the momentum of
            the config's own EMA-type hook, else 1e-3.

    Returns:
        Config: ``cfg``.
    """
    options = dict(variant.options)
    own = config_momentum(cfg)
    old = _without_ema_hooks(cfg)
    if variant.kind in ('ema', 'sema'):
        m = options.pop('momentum', momentum if momentum is not None else own)
        if m is None:
            m = DEFAULT_MOMENTUM
            print_log(
                f'{variant.label}: no momentum given and none in the '
                f'config; using {DEFAULT_MOMENTUM}.', logger='current')
        hook_type = 'EMAHook' if variant.kind == 'ema' else 'SwitchEMAHook'
        cfg.custom_hooks = list(cfg.custom_hooks) + [
            _hook_from(old, hook_type, float(m), options)
        ]
        if variant.kind == 'sema':
            _add_import(cfg, 'sema_mm')
    elif variant.kind == 'swa':
        _apply_swa(cfg, options)
    elif variant.kind == 'lookahead':
        _apply_lookahead(cfg, options)
    return cfg


def parse_variants(specs: Sequence[str]) -> List[Variant]:
    """Parse several variant specs; their folder names must differ."""
    variants = [parse_variant(s) for s in specs]
    names = [v.dirname for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f'variants repeat: {list(specs)}')
    return variants
