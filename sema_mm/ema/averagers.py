"""The EMA that ``SwitchEMAHook`` switches into the model: the averager
protocol and its strategies.

Every strategy gives the hook the same small interface (:class:`Averager`):
the averaged model (``ema_model``, EMAHook's contract), the (EMA, model)
tensor pairs that are averaged and switched, how to seed and update the
EMA, the numbers the pull-back guard needs, the module forward passes run
through, the cross-rank check, and how the EMA goes into and out of
checkpoints (:mod:`sema_mm.ema.checkpoints`).

* :class:`OwnEMA`: a separate copy of the model, any registered mmengine
  :class:`~mmengine.model.BaseAveragedModel` (``ema_type``), updated by the
  hook after each optimizer step. :class:`OwnFusedEMA` is the same for
  :class:`~sema_mm.ema.FusedEMA` (fused updates, momentum warm-up,
  compensated update interval).
* :class:`ModelTeacher`: the model's own momentum teacher (MoCo, BYOL, MoCo
  v3) is the EMA; the model updates it, the hook only switches it into the
  online modules it follows, and it is saved with the model.
* :class:`~sema_mm.ema.sharded.ShardedEMA`: the EMA of this rank's shards
  of a sharded model.

:func:`~sema_mm.ema.factory.build_averager` picks the strategy for a model
and a config.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mmengine.model import BaseAveragedModel
from torch import Tensor, nn

from ..switching.rank_check import check_ranks_agree
from .checkpoints import load_swapped, save_swapped
from .fused_ema import FusedEMA
from .momentum import MomentumSchedule
from .sync_state import EMAState, ModelSync
from .tensor_pairs import TensorPairs


class Averager:
    """What ``SwitchEMAHook`` needs of the EMA.

    Attributes:
        ema_model (nn.Module): The averaged model.
        model (nn.Module): The training model, unwrapped.
        pairs (TensorPairs): The (EMA, model) tensors that are averaged and
            switched.
        excluded (Tuple[str, ...]): Names of model modules and tensors kept
            out of averaging and switching.
        initial_state (EMAState): The EMA's state before training.
        schedule (MomentumSchedule, optional): The momentum of the EMA's
            updates, when sema_mm runs them with a warm-up-aware schedule.
        momentum_name (str): What sets :meth:`update_momentum`, for the
            pull-back guard's messages.
    """
    ema_model: nn.Module
    model: nn.Module
    pairs: TensorPairs
    excluded: Tuple[str, ...] = ()
    initial_state = EMAState.NOT_STARTED
    schedule: Optional[MomentumSchedule] = None
    momentum_name = 'momentum'

    def watched_tensors(self) -> List[Tensor]:
        """The model tensors whose version counters show an in-place change
        of its averaged weights (see :class:`~sema_mm.ema.ModelSync`)."""
        return self.pairs.source_tensors()

    def forward_model(self) -> nn.Module:
        """The module to run forward passes through (e.g. to re-estimate
        normalisation statistics after a switch)."""
        return self.model

    def agree(self, ok: bool) -> bool:
        """Whether ``ok`` holds for the whole EMA: here, this rank's
        ``ok`` (every rank holds all of it); a sharded EMA asks all
        ranks."""
        return ok

    def check_ranks(self, where: str) -> None:
        """Raise ``RuntimeError`` if the ranks' EMAs do not agree (see
        :mod:`sema_mm.switching.rank_check`); ``where`` names the moment
        for the message."""
        check_ranks_agree(self.pairs, where)

    def seed(self) -> None:
        """Start the EMA from the model's current weights."""

    def update(self) -> None:
        """Fold the model's current weights into the EMA."""

    def join(self) -> None:
        """Wait until every update handed to a worker is in the EMA (see
        :mod:`sema_mm.ema.host_offload`); before anything reads or writes
        the EMA other than an update."""

    def close(self) -> None:
        """Join, and release what the updates hold beside the EMA (a
        worker thread); the next update starts it again."""

    def start_training(self, sync: ModelSync, resumed: bool) -> None:
        """Set ``sync`` for the start of training: averaging continues from
        the resumed EMA (``resumed``: past the first update) or begins
        again."""
        if resumed:
            sync.updated()
        else:
            sync.restart()

    def after_step(self, ready: Callable[[], bool],
                   finite: Optional[Callable[[], bool]]) -> bool:
        """After an optimizer step: fold the weights in when ``ready()``
        (the optimizer stepped) and ``finite()`` holds on every rank (None:
        no check, nothing to agree on); whether the EMA moved."""
        if ready() and (finite is None or self.agree(finite())):
            self.update()
            return True
        return False

    def updates_per_switch(self, steps: float) -> Optional[float]:
        """EMA updates of the nominal momentum in ``steps`` optimizer
        steps, for the pull-back guard."""
        return steps

    def update_momentum(self, configured: float) -> Optional[float]:
        """The nominal momentum of the EMA's updates, for the pull-back
        guard: the hook's ``configured`` one for an EMA the hook updates."""
        return configured

    def warmup_momentum_at(self) -> Optional[Callable[[int], float]]:
        """The momentum of the ``k``-th update during a warm-up, if any."""
        schedule = self.schedule
        if schedule is None or not schedule.warmup_iters:
            return None
        return schedule.momentum_at

    def full_state(self) -> Dict[str, Tensor]:
        """The whole EMA as a state dict of the model: the EMA's averaged
        tensors, the model's own for everything else (copies). A sharded
        EMA gathers it: a collective, call it on every rank."""
        state = {
            k: v.detach().clone()
            for k, v in self.model.state_dict().items()
        }
        for name, tensor in zip(self.pairs.grouped_names,
                                self.pairs.averaged_tensors()):
            state[name] = tensor.detach().clone()
        return state

    def prepare_checkpoint(self, ema_is_model: bool) -> None:
        """Called on every rank before a checkpoint is saved, where a
        collective may run (mmengine saves on rank 0 only); here nothing.
        ``ema_is_model``: the EMA equals the model's weights."""

    def save(self, checkpoint: dict, ema_is_model: bool) -> None:
        """Put the EMA into ``checkpoint``; ``ema_is_model``: averaging has
        not begun, so the model's tensors stand for the EMA's."""

    def load(self, checkpoint: dict, strict: bool = True) -> bool:
        """Restore the EMA from a resumed ``checkpoint``; whether it held
        one (that fits, with ``strict=False``: see ``strict_load``)."""
        return False


class OwnEMA(Averager):
    """A separate EMA copy of the model, any registered averaged model,
    saved in EMAHook's form (:mod:`sema_mm.ema.checkpoints`).

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

    def updates_per_switch(self, steps: float) -> Optional[float]:
        # Updated every ``interval`` steps with the nominal momentum.
        return steps / getattr(self.ema_model, 'interval', 1)

    def save(self, checkpoint: dict, ema_is_model: bool) -> None:
        save_swapped(checkpoint, self.ema_model, self.pairs.names,
                     ema_is_model)

    def load(self, checkpoint: dict, strict: bool = True) -> bool:
        return load_swapped(checkpoint, self.ema_model, self.pairs.names,
                            strict)


class OwnFusedEMA(OwnEMA):
    """:class:`OwnEMA` for :class:`~sema_mm.ema.FusedEMA`: its own pairs
    (shared with its updates), seeding, warm-up and compensated interval."""
    ema_model: FusedEMA

    def __init__(self, ema_model: FusedEMA, model: nn.Module,
                 names: Sequence[str], excluded: Sequence[str]) -> None:
        super().__init__(ema_model, model, names, excluded)
        self.schedule = ema_model.schedule

    def _make_pairs(self, names: Sequence[str]) -> TensorPairs:
        return self.ema_model.pairs_for(self.model)

    def seed(self) -> None:
        self.ema_model.seed(self.model)

    def join(self) -> None:
        self.ema_model.join()

    def close(self) -> None:
        self.ema_model.close()

    def updates_per_switch(self, steps: float) -> Optional[float]:
        return steps  # the momentum is compensated per interval


class ModelTeacher(Averager):
    """The model's own momentum teacher as the EMA (no second copy).

    The model keeps updating the teacher as it always does (its own
    momentum schedule; the pull-back guard uses the teacher's momentum);
    each switch copies it into the online modules it follows. The teacher
    is part of the model's ``state_dict``, so checkpoints need nothing more
    and resuming restores nothing of its own.

    Args:
        model (nn.Module): The self-teaching model, unwrapped.
        name (str): Name of its teacher submodule, e.g. ``'encoder_k'``.
        pairs (Sequence[Tuple[str, str]]): (teacher, online) parameter
            names (see :func:`~sema_mm.ema.teachers.teacher_pairs`).
    """
    initial_state = EMAState.DIVERGED
    momentum_name = "the momentum of the model's teacher"

    def __init__(self, model: nn.Module, name: str,
                 pairs: Sequence[Tuple[str, str]]) -> None:
        self.teacher_name = name
        self.model = model
        self.ema_model = model.get_submodule(name)
        self.excluded = (name, )
        self.pairs = TensorPairs(model, model, [t for t, _ in pairs],
                                 [o for _, o in pairs])
        self.online = sorted({o.split('.')[0] for _, o in pairs})

    def start_training(self, sync: ModelSync, resumed: bool) -> None:
        """Nothing: the teacher is the model's, as loaded."""

    def after_step(self, ready: Callable[[], bool],
                   finite: Optional[Callable[[], bool]]) -> bool:
        """The model moved its teacher itself."""
        return True

    def updates_per_switch(self, steps: float) -> Optional[float]:
        # The model updates its teacher every ``interval`` steps.
        return steps / getattr(self.ema_model, 'interval', 1)

    def update_momentum(self, configured: float) -> Optional[float]:
        """The teacher's own momentum (its starting value for a schedule
        such as ``CosineEMA``'s); None if it has none."""
        momentum = getattr(self.ema_model, 'momentum', None)
        return None if momentum is None else float(momentum)
