"""Pick and build the EMA strategy (:class:`~sema_mm.ema.averagers.Averager`)
for a model and the hook's options: :func:`build_averager`.

* A sharded model (FSDP1, FSDP2; :func:`sema_mm.sharding.find_sharded`)
  gets a :class:`~sema_mm.ema.sharded.ShardedEMA` of its local shards.
* A self-teaching model with one momentum teacher that copies top-level
  modules gets :class:`~sema_mm.ema.averagers.ModelTeacher` (``teacher``).
* Any other model gets a separate averaged model of ``ema_type``:
  :class:`~sema_mm.ema.averagers.OwnFusedEMA` for ``FusedEMA``,
  :class:`~sema_mm.ema.averagers.OwnEMA` for the others.
"""
from typing import List, Optional, Sequence

from mmengine.logging import print_log
from mmengine.model import BaseAveragedModel
from mmengine.registry import MODELS
from torch import nn

from ..errors import require
from ..sharding import ShardAdapter, find_sharded
from .averagers import Averager, ModelTeacher, OwnEMA, OwnFusedEMA
from .ema_arguments import unknown_arguments_error
from .fused_ema import FusedEMA, select_averaged_names
from .momentum import MomentumSchedule
from .sharded import ShardedEMA
from .teachers import find_momentum_teachers, teacher_pairs


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


def _sharded_averager(shards: ShardAdapter, model: nn.Module, ema_type: str,
                      momentum: float, options: dict,
                      teacher: Optional[str], averages_norm_stats: bool,
                      excluded: List[str]) -> ShardedEMA:
    """A :class:`~sema_mm.ema.sharded.ShardedEMA` after checking that the
    options fit a sharded model."""
    ema_cls = resolve_ema_type(ema_type)
    require(
        issubclass(ema_cls, FusedEMA),
        f'ema_type={ema_type!r} copies the whole model, which is '
        f'sharded ({shards.name}); use the default ema_type=\'FusedEMA\', '
        'whose sharded form keeps the EMA of each rank\'s shard.')
    require(
        teacher in (None, 'auto'),
        f'teacher={teacher!r}: a momentum teacher cannot be the EMA of a '
        'sharded model (its shards do not line up with the online '
        "modules'); use teacher=None.")
    options = dict(options)
    require(
        options.pop('device', None) is None,
        'device is not supported for a sharded (FSDP) model: the EMA is '
        'kept beside each rank\'s shard, 1 / (number of ranks) of the '
        'model, on its device. Remove `device` from SwitchEMAHook.')
    schedule = MomentumSchedule(momentum, options.pop('interval', 1),
                                options.pop('warmup_iters', 0))
    require(
        not options,
        f'unsupported options for a sharded (FSDP) model: {sorted(options)}.')
    require(schedule.warmup_iters >= 0,
            f'warmup_iters must be >= 0, got {schedule.warmup_iters}.')
    averager = ShardedEMA(shards, model, schedule, averages_norm_stats,
                          excluded)
    local = sum(t.numel() for t in averager.pairs.averaged_tensors())
    print_log(
        f'SwitchEMAHook: sharded model ({shards.name}): each rank keeps the '
        f'EMA of its own shards ({local} elements on this rank)' +
        (f'; kept out: {", ".join(excluded)}' if excluded else '') + '.',
        logger='current')
    return averager


def build_averager(model: nn.Module,
                   ema_type: str = 'FusedEMA',
                   momentum: float = 1e-3,
                   options: Optional[dict] = None,
                   teacher: Optional[str] = 'auto',
                   averages_norm_stats: bool = False,
                   exclude: Sequence[str] = (),
                   auto_exclude: bool = True,
                   wrapped: Optional[nn.Module] = None) -> Averager:
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
    """
    options = dict(options or {})
    teachers = find_momentum_teachers(model)
    excluded = list(exclude) + (teachers if auto_exclude else [])
    shards = find_sharded(model if wrapped is None else wrapped)
    if shards is not None:
        return _sharded_averager(shards, model, ema_type, momentum, options,
                                 teacher, averages_norm_stats, excluded)
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
