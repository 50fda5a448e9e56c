"""Pick and build the EMA strategy (:class:`~sema_mm.ema.averagers.Averager`)
for a model and the hook's options: :func:`build_averager`.

* A sharded model (FSDP1, FSDP2; :func:`sema_mm.sharding.find_sharded`)
  gets a :class:`~sema_mm.ema.sharded.ShardedEMA` of its local shards.
* With ``shard=True`` and several ranks, any other model (DDP: the ranks
  hold the same weights) gets a :class:`~sema_mm.ema.sharded.DDPShardedEMA`
  (each rank averages 1/W of it, :class:`~sema_mm.sharding.DDPShards`).
* A self-teaching model with one momentum teacher that copies top-level
  modules gets :class:`~sema_mm.ema.averagers.ModelTeacher` (``teacher``).
* Any other model gets a separate averaged model of ``ema_type``:
  :class:`~sema_mm.ema.averagers.OwnFusedEMA` for ``FusedEMA``,
  :class:`~sema_mm.ema.averagers.OwnEMA` for the others.
"""
from typing import List, Optional, Sequence

from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.model import BaseAveragedModel
from mmengine.registry import MODELS
from torch import nn

from ..errors import require
from ..sharding import DDPShards, ShardAdapter, find_sharded
from .averagers import Averager, ModelTeacher, OwnEMA, OwnFusedEMA
from .ema_arguments import unknown_arguments_error
from .fused_ema import FusedEMA, select_averaged_names
from .momentum import MomentumSchedule
from .sharded import DDPShardedEMA, ShardedEMA
from .teachers import find_momentum_teachers, teacher_pairs
from .tensor_pairs import name_matches


def resolve_ema_type(ema_type: str) -> type:
    """Look ``ema_type`` up in the current scope's MODELS registry."""
    with MODELS.switch_scope_and_registry(None) as registry:
        ema_cls = registry.get(ema_type)
    require(
        isinstance(ema_cls, type) and issubclass(ema_cls, BaseAveragedModel),
        f'unknown ema_type {ema_type!r}: it must name a registered subclass '
        'of mmengine BaseAveragedModel, e.g. FusedEMA (default), '
        "ExponentialMovingAverage, or mmdet's ExpMomentumEMA (with "
        "default_scope='mmdet').")
    return ema_cls


def _model_teacher(model: nn.Module, teacher: Optional[str],
                   found: List[str],
                   averages_norm_stats: bool) -> Optional[ModelTeacher]:
    """The model's momentum teacher as the EMA, if ``teacher`` asks for it
    and the model has one (of ``found``) that can be switched into its
    online modules."""
    if teacher is None:
        return None
    if teacher != 'auto':
        require(
            teacher in found,
            f'teacher={teacher!r} is not an averaged-model submodule of the '
            f'model (found: {found}).')
        found = [teacher]
    pairs = teacher_pairs(model, found[0]) if len(found) == 1 else None
    require(
        pairs is not None or teacher == 'auto',
        f'the teacher {teacher!r} is not a copy of top-level modules of the '
        'model, so it cannot be switched into them; set teacher=None to '
        'keep a separate EMA.')
    if pairs is None:
        return None
    require(
        not averages_norm_stats,
        "buffers='average' needs a separate EMA; with the model's teacher "
        "use buffers='params' or 'recompute', or teacher=None.")
    return ModelTeacher(model, found[0], pairs)


def _require_shardable(ema_type: str, teacher: Optional[str],
                       what: str) -> None:
    """Refuse the options a sharded EMA cannot follow (``what``: the
    sharding, for the messages)."""
    ema_cls = resolve_ema_type(ema_type)
    require(
        issubclass(ema_cls, FusedEMA),
        f'ema_type={ema_type!r} copies the whole model and cannot be '
        f'sharded ({what}); use the default ema_type=\'FusedEMA\', whose '
        'sharded form keeps the EMA of each rank\'s shard.')
    require(
        teacher in (None, 'auto'),
        f'teacher={teacher!r}: a momentum teacher cannot be the EMA of a '
        f'sharded EMA ({what}; its shards do not line up with the online '
        "modules'); use teacher=None.")


def _sharded_ema(ema_cls: type, shards: ShardAdapter, model: nn.Module,
                 momentum: float, options: dict, averages_norm_stats: bool,
                 excluded: List[str], what: str) -> ShardedEMA:
    """``ema_cls`` (a sharded EMA) of ``shards``; logs how much of the EMA
    this rank holds (``what``: the sharding, for the message)."""
    options = dict(options)
    device = options.pop('device', None)
    schedule = MomentumSchedule(momentum, options.pop('interval', 1),
                                options.pop('warmup_iters', 0))
    require(
        not options,
        f'unsupported options for a sharded EMA: {sorted(options)}.')
    require(schedule.warmup_iters >= 0,
            f'warmup_iters must be >= 0, got {schedule.warmup_iters}.')
    averager = ema_cls(shards, model, schedule, averages_norm_stats,
                       excluded, device)
    local = sum(t.numel() for t in averager.pairs.averaged_tensors())
    whole = sum(averager.global_numels.values())
    print_log(
        f'SwitchEMAHook: {what}: this rank holds {local} of {whole} '
        'elements of the EMA' +
        (f'; kept out: {", ".join(excluded)}' if excluded else '') + '.',
        logger='current')
    return averager


def _sharded_averager(shards: ShardAdapter, model: nn.Module, ema_type: str,
                      momentum: float, options: dict,
                      teacher: Optional[str], averages_norm_stats: bool,
                      excluded: List[str]) -> ShardedEMA:
    """A :class:`~sema_mm.ema.sharded.ShardedEMA` after checking that the
    options fit a sharded model."""
    _require_shardable(ema_type, teacher, f'the model is {shards.name}')
    require(
        options.get('device') is None,
        'device is not supported for a sharded (FSDP) model: the EMA is '
        'kept beside each rank\'s shard, 1 / (number of ranks) of the '
        'model, on its device. Remove `device` from SwitchEMAHook.')
    return _sharded_ema(
        ShardedEMA, shards, model, momentum, options, averages_norm_stats,
        excluded, f'sharded model ({shards.name}), each rank keeps the EMA '
        'of its own shards')


def _ddp_sharded_averager(model: nn.Module, momentum: float, options: dict,
                          averages_norm_stats: bool,
                          excluded: List[str]) -> DDPShardedEMA:
    """A :class:`~sema_mm.ema.sharded.DDPShardedEMA` of ``model``, whose
    ranks hold the same weights (DDP)."""
    names = [
        n for n, p in model.named_parameters()
        if p.is_floating_point() and not name_matches(n, excluded)
    ]
    shards = DDPShards(model, names)
    return _sharded_ema(
        DDPShardedEMA, shards, model, momentum, options,
        averages_norm_stats, excluded,
        f'shard=True (rank {shards.rank} of {shards.world_size}; '
        'normalisation statistics, when averaged, are held whole)')


def build_averager(model: nn.Module,
                   ema_type: str = 'FusedEMA',
                   momentum: float = 1e-3,
                   options: Optional[dict] = None,
                   teacher: Optional[str] = 'auto',
                   averages_norm_stats: bool = False,
                   exclude: Sequence[str] = (),
                   auto_exclude: bool = True,
                   wrapped: Optional[nn.Module] = None,
                   shard: bool = False) -> Averager:
    """The EMA strategy for ``model`` (see the module docstring).

    Args:
        model (nn.Module): The training model, unwrapped.
        ema_type (str): A registered averaged model. Defaults to
            ``'FusedEMA'``.
        momentum (float): Weight of the new weights in each update
            (mmengine convention). Defaults to 1e-3.
        options (dict, optional): Further arguments of the averaged model,
            e.g. ``interval``, ``warmup_iters``, ``device``.
        teacher (str, optional): See ``SwitchEMAHook``: ``'auto'``, a
            teacher's name, or None for a separate EMA.
        averages_norm_stats (bool): The EMA averages normalisation
            statistics too (``buffers='average'``).
        exclude (Sequence[str]): Names kept out of averaging and switching.
        auto_exclude (bool): Also exclude the model's momentum teachers.
        wrapped (nn.Module, optional): The runner's model before unwrapping
            (e.g. the FSDP1 wrapper). Defaults to ``model``.
        shard (bool): Shard the EMA of a DDP model over the ranks (see
            :mod:`sema_mm.sharding.ddp`).
    """
    options = dict(options or {})
    teachers = find_momentum_teachers(model)
    excluded = list(exclude) + (teachers if auto_exclude else [])
    shards = find_sharded(model if wrapped is None else wrapped)
    if shards is not None:
        if shard:
            print_log(
                f'SwitchEMAHook: shard=True adds nothing to a sharded model '
                f'({shards.name}): its EMA already follows its shards.',
                logger='current')
        return _sharded_averager(shards, model, ema_type, momentum, options,
                                 teacher, averages_norm_stats, excluded)
    if shard:
        _require_shardable(ema_type, teacher, 'shard=True')
        require(
            _model_teacher(model, teacher, teachers,
                           averages_norm_stats) is None,
            'shard=True keeps a separate, sharded EMA, but teacher='
            f'{teacher!r} takes the model\'s momentum teacher as the EMA; '
            'use teacher=None (the teacher is then kept out of the EMA) '
            'or shard=False.')
        if get_world_size() > 1:
            return _ddp_sharded_averager(model, momentum, options,
                                         averages_norm_stats, excluded)
        print_log(
            'SwitchEMAHook: shard=True adds nothing in a single process: '
            'the one rank holds the whole EMA.', logger='current')
    found = _model_teacher(model, teacher, teachers, averages_norm_stats)
    if found is not None:
        print_log(
            f'SwitchEMAHook: the model\'s momentum teacher '
            f'`{found.teacher_name}` is the EMA (its own momentum schedule; '
            f'`momentum` is unused); each switch copies it into '
            f'{found.online}.', logger='current')
        return found
    ema_cls = resolve_ema_type(ema_type)
    cfg = dict(options, momentum=momentum,
               update_buffers=averages_norm_stats)
    fused = issubclass(ema_cls, FusedEMA)
    if fused:
        cfg['exclude'] = tuple(excluded)
    try:
        ema_model = ema_cls(model=model, **cfg)
    except TypeError as e:
        raise unknown_arguments_error(ema_cls, cfg, e) from e
    names = (ema_model.averaged_names if fused else select_averaged_names(
        ema_model.module, averages_norm_stats, excluded))
    averager = (OwnFusedEMA if fused else OwnEMA)(ema_model, model, names,
                                                  excluded)
    if excluded:
        print_log(
            'SwitchEMAHook: kept out of averaging and switching: '
            f'{", ".join(excluded)}', logger='current')
    return averager
