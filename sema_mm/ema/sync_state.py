"""Whether the EMA equals the model: one explicit state with its transitions.

The hook needs to know, at a switch, a validation and a checkpoint, how the
EMA relates to the model's weights::

    NOT_STARTED --seeded()--> IN_SYNC --updated()--> DIVERGED
                                 ^                      |
                                 +------switched()------+

* ``NOT_STARTED``: averaging has not begun (before ``begin_iter``); the EMA
  is, by definition, the model, and its own tensors are meaningless.
* ``IN_SYNC``: the EMA was just seeded from, or switched into, the model.
* ``DIVERGED``: the EMA was updated (or, for a model's own momentum teacher,
  the model moved it) since.

``IN_SYNC`` is only trusted while the model's averaged tensors have not been
modified in place since: their version counters are recorded at
:meth:`ModelSync.seeded` / :meth:`ModelSync.switched`, and a later
``load_state_dict``, optimizer step or in-place edit by other code makes
:attr:`ModelSync.in_sync` false again. The hook uses it for one thing only,
to skip a switch that would copy nothing new. Validation and test swaps and
checkpoints never rely on it (writes through ``.data`` bypass version
counters), so weights changed by other code after a switch are always
handled right.
"""
import enum
from typing import Callable, List, Optional

from torch import Tensor


class EMAState(enum.Enum):
    """How the EMA relates to the model's weights."""
    NOT_STARTED = 'not started'
    IN_SYNC = 'in sync with the model'
    DIVERGED = 'diverged from the model'


class ModelSync:
    """The :class:`EMAState` of an EMA and the model it follows.

    Args:
        model_tensors (Callable[[], List[Tensor]]): Returns the model's
            averaged tensors (views that share their version counters).
        state (EMAState): The initial state. Defaults to ``NOT_STARTED``.
    """

    def __init__(self,
                 model_tensors: Callable[[], List[Tensor]],
                 state: EMAState = EMAState.NOT_STARTED) -> None:
        self._model_tensors = model_tensors
        self.state = state
        self._versions: Optional[List[int]] = None

    @property
    def started(self) -> bool:
        """Whether averaging has begun (the EMA has its own values)."""
        return self.state is not EMAState.NOT_STARTED

    @property
    def in_sync(self) -> bool:
        """Whether the EMA provably equals the model right now."""
        return (self.state is EMAState.IN_SYNC
                and self._versions == self._current_versions())

    def _current_versions(self) -> List[int]:
        return [t._version for t in self._model_tensors()]

    def _set(self, state: EMAState) -> None:
        self.state = state
        self._versions = (self._current_versions()
                          if state is EMAState.IN_SYNC else None)

    def seeded(self) -> None:
        """The EMA was just copied from the model."""
        self._set(EMAState.IN_SYNC)

    def switched(self) -> None:
        """The EMA was just copied into the model."""
        self._set(EMAState.IN_SYNC)

    def updated(self) -> None:
        """The EMA moved away from the model."""
        self._set(EMAState.DIVERGED)

    def restart(self) -> None:
        """Averaging begins again (a new run, not a resume)."""
        self._set(EMAState.NOT_STARTED)
