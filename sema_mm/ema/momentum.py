"""The EMA's momentum schedule and its update rule, shared by every EMA
sema_mm runs itself (:class:`~sema_mm.ema.FusedEMA` and the sharded EMA).

Momentum convention (mmengine's): ``momentum`` is the weight of the *new*
weights,

.. math::

    \\theta^{ema}_{t} = (1 - m_t)\\,\\theta^{ema}_{t-1} + m_t\\,\\theta_t ,

so the decay ``alpha`` of the SEMA paper and of timm is ``1 - momentum``
(``alpha = 0.999`` is ``momentum = 1e-3``). With ``warmup_iters = W > 0``
the momentum starts near 1 and decays to ``momentum``:
``m_k = momentum + (1 - momentum) * exp(-k / W)`` for the ``k``-th update
(``k`` starts at 1). With ``interval = n > 1`` the average is updated every
``n``-th call with the momentum compensated, ``1 - (1 - m_k) ** n``, so the
time constant in optimizer steps does not change.
"""
from math import exp
from typing import NamedTuple

from .tensor_pairs import TensorPairs


class MomentumSchedule(NamedTuple):
    """The momentum of every EMA update (see the module docstring).

    Attributes:
        momentum (float): Weight of the new weights after the warm-up
            (mmengine convention), in (0, 1).
        interval (int): Update every this many steps, the momentum
            compensated. Defaults to 1.
        warmup_iters (int): Time constant of the warm-up, in updates; 0
            disables it. Defaults to 0.
    """
    momentum: float
    interval: int = 1
    warmup_iters: int = 0

    def momentum_at(self, k: int) -> float:
        """Momentum of the ``k``-th update (``k >= 1``) before
        compensation."""
        if self.warmup_iters <= 0:
            return self.momentum
        decay = exp(-k / self.warmup_iters)
        return self.momentum + (1 - self.momentum) * decay


def ema_step(pairs: TensorPairs, num_steps: int,
             schedule: MomentumSchedule) -> int:
    """The EMA update rule: fold the sources of ``pairs`` into their
    averages at step ``num_steps`` (0: seed them), updating every
    ``schedule.interval`` steps with the compensated momentum. Returns the
    next step count."""
    if num_steps == 0:
        pairs.copy_to_averaged()
    elif num_steps % schedule.interval == 0:
        m = schedule.momentum_at(num_steps)
        if schedule.interval > 1:
            m = 1 - (1 - m)**schedule.interval
        pairs.lerp_(m)
    return num_steps + 1
