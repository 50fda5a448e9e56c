"""When SEMA switches the EMA into the model.

:class:`SwitchSchedule` is a small value: the options of ``SwitchEMAHook``
that say when to switch, checked when the hook is built, and bound to the
train loop's length once before training (:meth:`SwitchSchedule.bind`).
The hook then only asks :meth:`~SwitchSchedule.due_after_iter` and
:meth:`~SwitchSchedule.due_after_epoch`; the pull-back guard asks
:attr:`~SwitchSchedule.iters_per_switch`.

Counting conventions: epochs and iterations are counted from 1 when they
name a switch point (``end=3`` allows a switch after the third epoch);
``batch_idx`` is mmengine's 0-based index within an epoch.
"""
import dataclasses
import logging
from typing import FrozenSet, Optional

from mmengine.logging import print_log

from ..errors import require


@dataclasses.dataclass(frozen=True)
class SwitchSchedule:
    """When to switch.

    Args:
        interval (int): Switch every ``interval`` epochs (``by_epoch``) or
            iterations. Defaults to 1.
        by_epoch (bool): Count ``interval`` in epochs (switch after the
            epoch) or in iterations (switch after that iteration's EMA
            update). Defaults to True.
        per_epoch (int): With ``by_epoch`` and ``interval=1``, switch this
            many times per epoch at evenly spaced iterations, the last at
            the epoch end. Defaults to 1.
        end (int, optional): Last epoch (``by_epoch``) or iteration, counted
            from 1, after which a switch may happen. Defaults to None (no
            end).
        iters_per_epoch (int, optional): Iterations per epoch of an
            epoch-based loop, set by :meth:`bind`.
        in_epoch_points (FrozenSet[int]): Numbers of iterations into an
            epoch (from 1) after which a switch happens before the epoch
            ends, set by :meth:`bind` from ``per_epoch``.
    """
    interval: int = 1
    by_epoch: bool = True
    per_epoch: int = 1
    end: Optional[int] = None
    iters_per_epoch: Optional[int] = None
    in_epoch_points: FrozenSet[int] = frozenset()

    def __post_init__(self) -> None:
        for name, value in (('switch_interval', self.interval),
                            ('switches_per_epoch', self.per_epoch)):
            require(
                isinstance(value, int) and value >= 1,
                f'{name} must be an int >= 1, got {value!r}.')
        require(
            self.per_epoch == 1 or (self.by_epoch and self.interval == 1),
            'switches_per_epoch > 1 needs switch_by_epoch=True and '
            f'switch_interval=1 (got switch_by_epoch={self.by_epoch}, '
            f'switch_interval={self.interval}).')
        require(self.end is None or self.end >= 1,
                f'switch_end must be None or >= 1, got {self.end!r}.')

    @property
    def unit(self) -> str:
        return 'epochs' if self.by_epoch else 'iterations'

    def bind(self, iters_per_epoch: Optional[int], max_epochs: int,
             max_iters: int) -> 'SwitchSchedule':
        """This schedule checked against a train loop.

        Args:
            iters_per_epoch (int, optional): Iterations per epoch, or None
                for an iteration-based loop.
            max_epochs (int): The loop's epochs.
            max_iters (int): The loop's iterations.
        """
        require(
            not (self.by_epoch and iters_per_epoch is None),
            'the train loop is iteration-based, so an epoch never ends during '
            'training. Set switch_by_epoch=False and switch_interval to a '
            'number of iterations.')
        unit_max = max_epochs if self.by_epoch else max_iters
        require(
            self.end is None or self.end <= unit_max,
            f'switch_end={self.end} is beyond the end of training '
            f'({unit_max} {self.unit}).')
        if self.interval > unit_max:
            print_log(
                f'SwitchEMAHook: switch_interval={self.interval} '
                f'{self.unit} is longer than training ({unit_max} '
                f'{self.unit}); the EMA will never be switched into the '
                'model.', logger='current', level=logging.WARNING)
        n = self.per_epoch
        if n > 1:
            require(
                n <= iters_per_epoch,
                f'switches_per_epoch={n} exceeds the {iters_per_epoch} '
                'iterations of an epoch.')
        return dataclasses.replace(
            self,
            iters_per_epoch=iters_per_epoch,
            in_epoch_points=frozenset(
                round(k * iters_per_epoch / n) for k in range(1, n)))

    @property
    def iters_per_switch(self) -> float:
        """Training iterations between two switches."""
        if self.by_epoch:
            return self.iters_per_epoch * self.interval / self.per_epoch
        return self.interval

    def _before_end(self, count: int) -> bool:
        return self.end is None or count <= self.end

    def due_after_iter(self, epoch: int, batch_idx: int, iter: int) -> bool:
        """Whether a switch follows this iteration's EMA update.

        Args:
            epoch (int): The runner's 0-based epoch.
            batch_idx (int): The 0-based index of the batch in the epoch.
            iter (int): The runner's 0-based iteration.
        """
        if self.by_epoch:
            return (batch_idx + 1 in self.in_epoch_points
                    and self._before_end(epoch + 1))
        done = iter + 1
        return done % self.interval == 0 and self._before_end(done)

    def due_after_epoch(self, epoch: int) -> bool:
        """Whether a switch ends this (0-based) epoch."""
        done = epoch + 1
        return (self.by_epoch and done % self.interval == 0
                and self._before_end(done))
