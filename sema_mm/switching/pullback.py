"""Warn when the EMA's time constant fights the switch interval.

After a switch the model and the EMA are equal. Over the next ``S`` EMA
updates with momentum ``m`` (mmengine convention), the EMA becomes

.. math::

    \\theta^{ema}_S = w\\,\\theta_0
        + \\sum_{k=1}^{S} m (1-m)^{S-k}\\,\\theta_k ,
    \\qquad w = \\prod_{k=1}^{S} (1 - m_k) = (1 - m)^S ,

so the next switch pulls the model back toward the weights of the previous
switch with weight ``w``. The EMA's time constant is about ``1 / m`` updates;
when it is much longer than ``S``, ``w`` is close to 1, each switch undoes most
of the interval's progress, and training slows down (the paper's
Proposition 2: a SEMA step is an SGD step scaled down).

The default threshold, 0.5, flags settings where a switch undoes more than
half of an interval's progress. The paper's settings for CIFAR-100 (batch 128,
``m = 0.01``: ``w = 0.99 ** 391 = 0.02``), COCO (batch 16, ``m = 1e-3``:
``w = 0.999 ** 7330 = 6.5e-4``) and ImageNet ResNet-50 (batch 256,
``m = 1e-3``: ``w = 0.0067``) are far below it; a 5-step epoch with
``m = 0.01`` (``w = 0.95``) is far above it.
"""
import logging
import math
from typing import Callable, Optional

from mmengine.logging import print_log


def pullback_weight(momentum_at: Callable[[int], float], first: int,
                    updates: int) -> float:
    """``prod(1 - momentum_at(k))`` for ``k`` in ``[first, first + updates)``.
    """
    log_w = sum(
        math.log1p(-momentum_at(k)) for k in range(first, first + updates))
    return math.exp(log_w)


def momentum_for(threshold: float, updates: float) -> float:
    """The smallest momentum whose pull-back over ``updates`` updates is at
    most ``threshold``: ``1 - threshold ** (1 / updates)``."""
    return 1 - threshold**(1 / updates)


def log_pullback(updates: float,
                 momentum: float,
                 threshold: float,
                 warmup_momentum_at: Optional[Callable[[int], float]] = None,
                 momentum_name: str = 'momentum') -> float:
    """Log the pull-back weight of a switch schedule; warn above
    ``threshold`` with the momentum that would bring it under.

    Args:
        updates (float): EMA updates of momentum ``momentum`` between two
            switches.
        momentum (float): The steady-state momentum (mmengine convention,
            the weight of the new weights).
        threshold (float): Warn when the pull-back weight exceeds it.
        warmup_momentum_at (Callable, optional): Momentum of the ``k``-th
            update (from 1) during a momentum warm-up, to report the first
            switch's pull-back too. Defaults to None (no warm-up).
        momentum_name (str): What the user changes to change ``momentum``,
            for the messages. Defaults to ``'momentum'`` (the hook's).

    Returns:
        float: The steady-state pull-back weight.
    """
    whole = max(int(round(updates)), 1)
    steady = pullback_weight(lambda k: momentum, 1, whole)
    message = (
        f'SwitchEMAHook: {updates:.0f} EMA updates per switch with '
        f'{momentum_name} {momentum:g}: after each switch interval the EMA '
        f'still gives weight {steady:.3g} to the weights of the previous '
        f'switch (warning threshold {threshold:g})')
    if warmup_momentum_at is not None:
        first = pullback_weight(warmup_momentum_at, 1, whole)
        message += f'; {first:.3g} for the first switch (momentum warm-up)'
    if steady <= threshold:
        print_log(message + '.', logger='current')
        return steady
    suggested = momentum_for(threshold, updates)
    print_log(
        message + '. Each switch would pull the model back by more than '
        f'the threshold, which slows training down. Use {momentum_name} >= '
        f'{suggested:.3g} (the EMA time constant ~1/momentum updates then '
        f'fits in one switch interval), switch less often, or raise '
        'pullback_threshold if this is intended. The momentum is not '
        'changed.',
        logger='current',
        level=logging.WARNING)
    return steady
