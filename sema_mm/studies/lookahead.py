"""The Lookahead optimizer (Zhang et al., 2019) as an mmengine optimizer.

Lookahead wraps an inner ("fast") optimizer: after every ``k`` inner steps
the slow weights move a fraction ``alpha`` towards the fast weights, which
then restart from the slow ones::

    slow += alpha * (fast - slow);  fast = slow

The implementation is timm's ``timm.optim.Lookahead`` when timm is installed
(``pip install timm -c requirements/pinned.txt``; it does not change torch).
Without timm, :class:`PlainLookahead` below does the same thing: the same
update, the same state (``lookahead_slow_buff`` in the inner optimizer's
state, ``lookahead_alpha`` / ``lookahead_k`` / ``lookahead_step`` in each
param group), and the same start, where the slow weights are taken from the
fast ones at the first sync, after ``k`` steps.

In a config the optimizer keeps its own keys at the top level, so that
mmengine's optimizer constructor (``paramwise_cfg``, ``lr`` and
``weight_decay`` lookups) and LR schedulers see them as before::

    optim_wrapper = dict(optimizer=dict(
        type='Lookahead', base_type='SGD', lookahead_k=5,
        lookahead_alpha=0.5, lr=0.1, momentum=0.9, weight_decay=5e-4))

``tools/compare.py`` builds this from any config with the ``lookahead``
variant (:mod:`sema_mm.comparison.variants`). The inner optimizer's state
(momentum buffers) is kept across syncs, as in timm.
"""
from collections import defaultdict
from typing import Optional

import torch
from mmengine.registry import OPTIMIZERS
from torch.optim import Optimizer


class PlainLookahead(Optimizer):
    """Lookahead around ``base_optimizer``, written like timm's.

    Args:
        base_optimizer (Optimizer): The inner (fast) optimizer.
        alpha (float): Step of the slow weights towards the fast ones, in
            [0, 1]. Defaults to 0.5.
        k (int): Inner steps between two syncs. Defaults to 6.
    """

    def __init__(self, base_optimizer: Optimizer, alpha: float = 0.5,
                 k: int = 6) -> None:
        # As in timm, Optimizer.__init__ is not called: the param groups
        # and state are the inner optimizer's.
        self._optimizer_step_pre_hooks = {}
        self._optimizer_step_post_hooks = {}
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f'Invalid slow update rate: {alpha}')
        if not 1 <= k:
            raise ValueError(f'Invalid lookahead steps: {k}')
        defaults = dict(lookahead_alpha=alpha, lookahead_k=k,
                        lookahead_step=0)
        self._base_optimizer = base_optimizer
        self.param_groups = base_optimizer.param_groups
        self.defaults = base_optimizer.defaults
        self.defaults.update(defaults)
        self.state = defaultdict(dict)
        for name, default in defaults.items():
            for group in self.param_groups:
                group.setdefault(name, default)

    @torch.no_grad()
    def update_slow(self, group: dict) -> None:
        """Move the slow weights of ``group`` and reset the fast ones."""
        for fast in group['params']:
            if fast.grad is None:
                continue
            state = self._base_optimizer.state[fast]
            if 'lookahead_slow_buff' not in state:
                state['lookahead_slow_buff'] = fast.detach().clone()
            slow = state['lookahead_slow_buff']
            slow.add_(fast - slow, alpha=group['lookahead_alpha'])
            fast.copy_(slow)

    @torch.no_grad()
    def step(self, closure=None):
        """One inner step; a sync every ``lookahead_k`` of them."""
        loss = self._base_optimizer.step(closure)
        for group in self.param_groups:
            group['lookahead_step'] += 1
            if group['lookahead_step'] % group['lookahead_k'] == 0:
                self.update_slow(group)
        return loss

    def state_dict(self) -> dict:
        """The inner optimizer's state dict (slow buffers included)."""
        return self._base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        """Load the inner optimizer's state dict."""
        self._base_optimizer.load_state_dict(state_dict)
        self.param_groups = self._base_optimizer.param_groups
        for name in ('lookahead_alpha', 'lookahead_k', 'lookahead_step'):
            for group in self.param_groups:
                group.setdefault(name, self.defaults[name])


def timm_lookahead() -> Optional[type]:
    """timm's ``Lookahead`` class, or None when timm is not installed."""
    try:
        from timm.optim import Lookahead as TimmLookahead
    except ImportError:
        return None
    return TimmLookahead


LookaheadBase = timm_lookahead() or PlainLookahead


@OPTIMIZERS.register_module()
class Lookahead(LookaheadBase):
    """Lookahead around an optimizer built from the registry.

    Args:
        params: Parameters or param groups, as for any torch optimizer.
        base_type (str): Registered type of the inner optimizer, e.g.
            ``'SGD'`` or ``'AdamW'``. Defaults to ``'SGD'``.
        lookahead_k (int): Inner steps between two syncs. Defaults to 5.
        lookahead_alpha (float): Step of the slow weights. Defaults to 0.5.
        **base_kwargs: Arguments of the inner optimizer (``lr``, ...).
    """

    def __init__(self, params, base_type: str = 'SGD', lookahead_k: int = 5,
                 lookahead_alpha: float = 0.5, **base_kwargs) -> None:
        base = OPTIMIZERS.build(
            dict(type=base_type, params=params, **base_kwargs))
        super().__init__(base, alpha=lookahead_alpha, k=lookahead_k)
        self.base_type = base_type

    @property
    def implementation(self) -> str:
        """``'timm'`` or ``'sema_mm'``: whose Lookahead this is."""
        return 'sema_mm' if issubclass(LookaheadBase, PlainLookahead) \
            else 'timm'
