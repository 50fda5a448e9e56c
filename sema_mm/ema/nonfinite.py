"""Keep non-finite weights out of the EMA (``nonfinite_check``).

A NaN or an infinity averaged into the EMA stays there for good. Before each
update, :class:`NonfiniteGuard` decides whether the model's weights may enter
the average:

* ``'loss'`` (default): the iteration's loss as logged by mmengine is finite.
  Free: mmengine has already read the loss to the host.
* ``'weights'``: every averaged weight is finite, one fused reduction and a
  device synchronisation per update.
* ``None``: no check.

A skipped update is counted and logged as a warning.
"""
import logging
import math
from typing import Optional

from mmengine.logging import print_log

from ..errors import require
from .tensor_pairs import TensorPairs, all_finite

NONFINITE_CHECKS = ('loss', 'weights', None)


class NonfiniteGuard:
    """Decide, per update, whether the weights are finite.

    Args:
        mode (str, optional): ``'loss'``, ``'weights'`` or None (see the
            module docstring).
    """

    def __init__(self, mode: Optional[str] = 'loss') -> None:
        require(
            mode in NONFINITE_CHECKS,
            f'nonfinite_check must be one of {NONFINITE_CHECKS}, got '
            f'{mode!r}.')
        self.mode = mode
        self.skipped = 0

    def allows_update(self, runner, pairs: TensorPairs) -> bool:
        """Whether this iteration's weights may enter the average; warn
        and count when they may not."""
        if self.mode == 'loss':
            loss = runner.message_hub.log_scalars.get('train/loss')
            finite = loss is None or math.isfinite(loss.current())
        elif self.mode == 'weights':
            finite = all_finite(pairs.source_tensors())
        else:
            finite = True
        if not finite:
            self.skipped += 1
            print_log(
                f'SwitchEMAHook: non-finite weights at iteration '
                f'{runner.iter + 1} were not averaged into the EMA '
                f'({self.skipped} updates skipped so far).',
                logger='current', level=logging.WARNING)
        return finite
