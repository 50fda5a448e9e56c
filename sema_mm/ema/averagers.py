"""The EMA that ``SwitchEMAHook`` switches into the model: two strategies.

Every strategy gives the hook the same small interface (:class:`Averager`):
the averaged model (``ema_model``, EMAHook's contract), the (EMA, model)
tensor pairs that are averaged and switched, how to seed and update the
EMA, the numbers the pull-back guard needs, and how the EMA goes into and
out of checkpoints.

* :class:`OwnEMA`: a separate copy of the model, any registered mmengine
  :class:`~mmengine.model.BaseAveragedModel` (``ema_type``), updated by the
  hook after each optimizer step. :class:`OwnFusedEMA` is the same for
  :class:`~sema_mm.ema.FusedEMA` (fused updates, momentum warm-up,
  compensated update interval).
* :class:`ModelTeacher`: the model's own momentum teacher (MoCo, BYOL, MoCo
  v3) is the EMA; the model updates it, the hook only switches it into the
  online modules it follows, and it is saved with the model.

:func:`build_averager` picks the strategy for a model and a config.
"""
import logging
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mmengine.logging import print_log
from mmengine.model import BaseAveragedModel
from mmengine.registry import MODELS
from torch import Tensor, nn

from ..sharding.fsdp1 import find_sharded
from ..errors import require
from .fused_ema import FusedEMA, select_averaged_names
from .sync_state import EMAState
from .teachers import find_momentum_teachers, teacher_pairs
from .tensor_pairs import TensorPairs


class Averager:
    """What ``SwitchEMAHook`` needs of the EMA.

    Attributes:
        ema_model (nn.Module): The averaged model.
        pairs (TensorPairs): The (EMA, model) tensors that are averaged and
            switched.
        excluded (Tuple[str, ...]): Names of model modules and tensors kept
            out of averaging and switching.
        updated_by_model (bool): The model updates the EMA itself; the hook
            only switches it.
        initial_state (EMAState): The EMA's state before training.
        forward_model (nn.Module, optional): The module to run forward
            passes through (an FSDP1 root wrapper) when it is not the
            unwrapped model.
    """
    ema_model: nn.Module
    pairs: TensorPairs
    excluded: Tuple[str, ...] = ()
    updated_by_model = False
    initial_state = EMAState.NOT_STARTED
    forward_model: Optional[nn.Module] = None

    def watched_tensors(self) -> List[Tensor]:
        """The model tensors whose version counters show an in-place change
        of its averaged weights (see :class:`~sema_mm.ema.ModelSync`)."""
        return self.pairs.source_tensors()

    def agree(self, ok: bool) -> bool:
        """Whether ``ok`` holds for the whole EMA: here, this rank's
        ``ok`` (every rank holds all of it); a sharded EMA asks all
        ranks."""
        return ok

    def seed(self) -> None:
        """Start the EMA from the model's current weights."""

    def update(self) -> None:
        """Fold the model's current weights into the EMA."""

    def updates_per_switch(self, steps: float) -> float:
        """EMA updates of the nominal momentum in ``steps`` optimizer
        steps."""
        return steps

    def warmup_momentum_at(self) -> Optional[Callable[[int], float]]:
        """The momentum of the ``k``-th update during a warm-up, if any."""
        return None

    def save(self, checkpoint: dict, ema_is_model: bool) -> None:
        """Put the EMA into ``checkpoint`` (see :class:`OwnEMA`);
        ``ema_is_model``: averaging has not begun, so the model's tensors
        stand for the EMA's."""

    def load(self, checkpoint: dict) -> bool:
        """Restore the EMA from a resumed ``checkpoint``; whether it held
        one. An EMA that is part of the model (a momentum teacher) comes
        back with the model's weights: nothing to do here."""
        return False


class OwnEMA(Averager):
    """A separate EMA copy of the model, any registered averaged model.

    Checkpoints (as mmengine's ``EMAHook``): ``state_dict`` gets the
    averaged tensors (ready to deploy), ``ema_state_dict`` the model's own
    plus everything else of the averaged model (e.g. its ``steps``), which
    resuming swaps back. Only averaged tensors are exchanged.

    Args:
        ema_model (BaseAveragedModel): The averaged model, built from
            ``model``.
        model (nn.Module): The training model, unwrapped.
        names (Sequence[str]): The averaged tensors' names.
        excluded (Sequence[str]): Names kept out of averaging.
    """

    def __init__(self, ema_model: BaseAveragedModel, model: nn.Module,
                 names: Sequence[str], excluded: Sequence[str]) -> None:
        self.ema_model = ema_model
        self.model = model
        self.excluded = tuple(excluded)
        self.pairs = self._make_pairs(names)

    def _make_pairs(self, names: Sequence[str]) -> TensorPairs:
        return TensorPairs(self.ema_model.module, self.model, names)

    def seed(self) -> None:
        self.pairs.copy_to_averaged()
        self.ema_model.steps.fill_(1)

    def update(self) -> None:
        self.ema_model.update_parameters(self.model)

    def updates_per_switch(self, steps: float) -> float:
        # Updated every ``interval`` steps with the nominal momentum.
        return steps / getattr(self.ema_model, 'interval', 1)

    def save(self, checkpoint: dict, ema_is_model: bool) -> None:
        ema_state = self.ema_model.state_dict()
        model_state = checkpoint['state_dict']
        averaged = set(self.pairs.names)
        for name in model_state:
            key = 'module.' + name
            if key in ema_state and (name not in averaged or ema_is_model):
                # Not averaged, or not averaged yet: store the model's.
                ema_state[key] = model_state[name]
        self._swap_state_dicts(model_state, ema_state)
        checkpoint['ema_state_dict'] = ema_state

    def load(self, checkpoint: dict) -> bool:
        if 'ema_state_dict' not in checkpoint:
            print_log(
                'SwitchEMAHook: the resumed checkpoint has no '
                '`ema_state_dict`; the EMA starts again from the resumed '
                'weights.', logger='current', level=logging.WARNING)
            return False
        ema_state = checkpoint['ema_state_dict']
        self._check_ema_state(ema_state)
        self._swap_state_dicts(checkpoint['state_dict'], ema_state)
        self.ema_model.load_state_dict(ema_state, strict=True)
        return True

    def _check_ema_state(self, ema_state: Dict) -> None:
        """Fail with a clear message when a checkpoint's EMA does not fit."""
        expected = self.ema_model.state_dict()
        missing = sorted(set(expected) - set(ema_state))
        unexpected = sorted(set(ema_state) - set(expected))
        mismatched = sorted(
            k for k in set(expected) & set(ema_state)
            if tuple(expected[k].shape) != tuple(ema_state[k].shape))
        if missing or unexpected or mismatched:
            raise ValueError(
                'SwitchEMAHook: the EMA in the resumed checkpoint does not '
                f'match the model (missing: {missing[:5]}, unexpected: '
                f'{unexpected[:5]}, shape mismatch: {mismatched[:5]}). Resume '
                'from a checkpoint of this config, or start a new run with '
                '`load_from=<checkpoint>` (the EMA then starts from the '
                'loaded weights).')

    def _swap_state_dicts(self, model_state: Dict, ema_state: Dict) -> None:
        """Exchange the averaged entries of the two state dicts."""
        for name in self.pairs.names:
            if name in model_state:
                key = 'module.' + name
                model_state[name], ema_state[key] = (ema_state[key],
                                                     model_state[name])


class OwnFusedEMA(OwnEMA):
    """:class:`OwnEMA` for :class:`~sema_mm.ema.FusedEMA`: its own pairs
    (shared with its updates), seeding, warm-up and compensated interval."""
    ema_model: FusedEMA

    def _make_pairs(self, names: Sequence[str]) -> TensorPairs:
        return self.ema_model.pairs_for(self.model)

    def seed(self) -> None:
        self.ema_model.seed(self.model)

    def updates_per_switch(self, steps: float) -> float:
        return steps  # the momentum is compensated per interval

    def warmup_momentum_at(self) -> Optional[Callable[[int], float]]:
        return (self.ema_model.momentum_at
                if self.ema_model.warmup_iters else None)


class ModelTeacher(Averager):
    """The model's own momentum teacher as the EMA (no second copy).

    The model keeps updating the teacher as it always does (its own
    momentum schedule); each switch copies it into the online modules it
    follows. The teacher is part of the model's ``state_dict``, so
    checkpoints need nothing more.

    Args:
        model (nn.Module): The self-teaching model, unwrapped.
        name (str): Name of its teacher submodule, e.g. ``'encoder_k'``.
        pairs (Sequence[Tuple[str, str]]): (teacher, online) parameter
            names (see :func:`~sema_mm.ema.teachers.teacher_pairs`).
    """
    updated_by_model = True
    initial_state = EMAState.DIVERGED

    def __init__(self, model: nn.Module, name: str,
                 pairs: Sequence[Tuple[str, str]]) -> None:
        self.teacher_name = name
        self.ema_model = model.get_submodule(name)
        self.excluded = (name, )
        self.pairs = TensorPairs(model, model, [t for t, _ in pairs],
                                 [o for _, o in pairs])
        self.online = sorted({o.split('.')[0] for _, o in pairs})


def _model_teacher(model: nn.Module, teacher: Optional[str],
                   averages_norm_stats: bool) -> Optional[ModelTeacher]:
    """The model's momentum teacher as the EMA, if ``teacher`` asks for it
    and the model has one that can be switched into its online modules."""
    if teacher is None:
        return None
    found = find_momentum_teachers(model)
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


def _sharded_averager(sharded, model: nn.Module, ema_cfg: dict,
                      teacher: Optional[str], averages_norm_stats: bool,
                      exclude: Sequence[str],
                      auto_exclude: bool) -> Averager:
    """A :class:`~sema_mm.ema.sharded.ShardedEMA` after checking that the
    options fit a sharded model."""
    from .sharded import ShardedEMA
    ema_cls = resolve_ema_type(ema_cfg['type'])
    require(
        issubclass(ema_cls, FusedEMA),
        f'ema_type={ema_cfg["type"]!r} copies the whole model, which is '
        f'sharded ({sharded.kind}); use the default ema_type=\'FusedEMA\', '
        'whose sharded form keeps the EMA of each rank\'s shard.')
    teachers = find_momentum_teachers(model)
    require(
        teacher in (None, 'auto'),
        f'teacher={teacher!r}: a momentum teacher cannot be the EMA of a '
        'sharded model (its shards do not line up with the online '
        "modules'); use teacher=None.")
    excluded = list(exclude) + (teachers if auto_exclude else [])
    averager = ShardedEMA(sharded, {
        k: v
        for k, v in ema_cfg.items() if k != 'type'
    }, averages_norm_stats, excluded)
    local = sum(t.numel() for t in averager.pairs.averaged_tensors())
    print_log(
        f'SwitchEMAHook: sharded model ({sharded.kind}): each rank keeps the '
        f'EMA of its own shards ({local} elements on this rank)' +
        (f'; kept out: {", ".join(excluded)}' if excluded else '') + '.',
        logger='current')
    return averager


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


def build_averager(model: nn.Module,
                   ema_cfg: dict,
                   teacher: Optional[str] = 'auto',
                   averages_norm_stats: bool = False,
                   exclude: Sequence[str] = (),
                   auto_exclude: bool = True,
                   wrapped: Optional[nn.Module] = None) -> Averager:
    """The EMA strategy for ``model``.

    A sharded model (FSDP1 or FSDP2, see :mod:`sema_mm.sharding.fsdp1`) gets a
    :class:`~sema_mm.ema.sharded.ShardedEMA` of its local shards.

    Args:
        model (nn.Module): The training model, unwrapped.
        ema_cfg (dict): ``type`` (a registered averaged model) and its
            arguments, e.g. ``momentum``.
        teacher (str, optional): See ``SwitchEMAHook``: ``'auto'``, a
            teacher's name, or None for a separate EMA.
        averages_norm_stats (bool): The EMA averages normalisation
            statistics too (``buffers='average'``).
        exclude (Sequence[str]): Names kept out of averaging and switching.
        auto_exclude (bool): Also exclude the model's momentum teachers.
        wrapped (nn.Module, optional): The runner's model before unwrapping
            (e.g. the FSDP1 wrapper). Defaults to ``model``.
    """
    sharded = find_sharded(model if wrapped is None else wrapped)
    if sharded is not None:
        return _sharded_averager(sharded, model, ema_cfg, teacher,
                                 averages_norm_stats, exclude, auto_exclude)
    found = _model_teacher(model, teacher, averages_norm_stats)
    if found is not None:
        print_log(
            f'SwitchEMAHook: the model\'s momentum teacher '
            f'`{found.teacher_name}` is the EMA (its own momentum schedule; '
            f'`momentum` is unused); each switch copies it into '
            f'{found.online}.', logger='current')
        return found
    ema_cls = resolve_ema_type(ema_cfg['type'])
    cfg = {k: v for k, v in ema_cfg.items() if k != 'type'}
    cfg['update_buffers'] = averages_norm_stats
    excluded = list(exclude)
    if auto_exclude:
        excluded += find_momentum_teachers(model)
    fused = issubclass(ema_cls, FusedEMA)
    if fused:
        cfg['exclude'] = tuple(excluded)
    try:
        ema_model = ema_cls(model=model, **cfg)
    except TypeError as e:
        raise ValueError(
            f'SwitchEMAHook: ema_type={ema_cls.__name__} does not accept '
            f'the arguments {sorted(cfg)}: {e}. Options such as '
            'warmup_iters belong to the default ema_type FusedEMA.') from e
    names = (ema_model.averaged_names if fused else select_averaged_names(
        ema_model.module, averages_norm_stats, excluded))
    averager = (OwnFusedEMA if fused else OwnEMA)(ema_model, model, names,
                                                  excluded)
    if excluded:
        print_log(
            'SwitchEMAHook: kept out of averaging and switching: '
            f'{", ".join(excluded)}', logger='current')
    return averager
