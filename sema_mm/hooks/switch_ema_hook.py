"""SwitchEMAHook: Switch EMA (SEMA) for the mmengine Runner.

SEMA (Li et al., "Switch EMA: A Free Lunch for Better Flatness and
Sharpness", Algorithm 1) keeps an exponential moving average of the weights
and, at the end of every epoch, copies it back into the training model, which
keeps training from there::

    ema = copy(model)                          # when averaging begins
    for epoch in range(max_epochs):
        for batch in loader:
            step(model, batch)                 # forward, backward, optimizer
            ema = (1 - m) * ema + m * model    # m = 1 - alpha (mmengine)
        model = ema                  # the switch; optimizer state kept
        validate(model); save(model)

This file is the hook's lifecycle: when to seed, update, switch and save.
"""
import logging
from typing import Dict, Optional, Sequence

import torch
from mmengine.hooks import EMAHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

from ..ema.averagers import OwnEMA
from ..ema.ema_arguments import check_ema_device
from ..ema.factory import build_averager
from ..ema.model_buffers import BufferTies, tie_buffers
from ..ema.nonfinite import NonfiniteGuard
from ..ema.sync_state import ModelSync
from ..ema.tensor_pairs import all_finite
from ..errors import require
from ..switching.norm_stats import NORM_STATS_POLICIES, SwitchContext
from ..switching.pullback import log_pullback
from ..switching.scalars import record_switch
from ..switching.schedule import SwitchSchedule
from .checkpoint_due import best_checkpoint_possible, checkpoint_due


@HOOKS.register_module()
class SwitchEMAHook(EMAHook):
    """Exponential moving average of the weights, switched into the model.

    With ``dict(type='SwitchEMAHook', momentum=m)`` and every other argument
    at its default, training follows Algorithm 1 of the SEMA paper: the EMA
    starts as a copy of the weights when averaging begins (after pretrained
    or resumed weights are loaded), is updated after every optimizer step,
    and is copied into the model's parameters at the end of every training
    epoch, before that epoch's validation and checkpoint. The optimizer state
    is left as it is.

    A separate EMA's ``ema_model.module`` carries the model's own
    normalisation statistics and other buffers that are not averaged (as
    with mmengine's EMAHook), by sharing their tensors (see
    :mod:`sema_mm.ema.model_buffers`); a sharded EMA (``shard=True``, FSDP)
    holds only this rank's share of the averaged tensors.

    The hook decides *when* to seed, update, switch and save. *What* is
    averaged lives in an :class:`~sema_mm.ema.averagers.Averager` (a separate
    EMA, or the model's momentum teacher), the switch points in a
    :class:`~sema_mm.switching.SwitchSchedule`, the EMA's relation to the
    model in a :class:`~sema_mm.ema.ModelSync`, normalisation statistics in
    :data:`~sema_mm.switching.NORM_STATS_POLICIES`.

    It subclasses mmengine's :class:`~mmengine.hooks.EMAHook` for identity
    only (``isinstance(h, EMAHook)`` finds it; it refuses to run beside
    another EMA hook); every hook method is its own. As with EMAHook,
    validation and test see the EMA, and ``ema_model`` is the averaged model.

    Args:
        momentum (float): Weight of the new weights in each EMA update,
            mmengine's convention: ``ema = (1 - momentum) * ema + momentum *
            weights``. The paper's (and timm's) decay ``alpha`` is ``1 -
            momentum``: alpha = 0.999 is ``momentum=1e-3`` (the default).
            Must lie in (0, 0.5].
        switch_interval (int): Switch every this many epochs, or iterations
            with ``switch_by_epoch=False``. Defaults to 1.
        switch_by_epoch (bool): Count ``switch_interval`` in epochs, or in
            iterations (switch after that iteration's update; needed for
            ``IterBasedTrainLoop``). Defaults to True.
        switches_per_epoch (int): Switch this many times per epoch, evenly
            spaced, the last at the epoch end (2: the paper's half-epoch
            switching). Defaults to 1.
        switch_end (int, optional): Last epoch (or iteration), counted from
            1, after which a switch may happen. Defaults to None.
        buffers (str): Normalisation statistics: ``'params'`` (default, the
            paper: the model keeps its own), ``'average'`` (averaged and
            switched too) or ``'recompute'`` (re-estimated from
            ``bn_batches`` batches after each switch); see
            :mod:`sema_mm.switching.norm_stats`.
        bn_batches (int): Batches for ``'recompute'``. Defaults to 50.
        exclude (Sequence[str]): Parameters, buffers or modules kept out of
            averaging and switching (``'encoder_k'`` covers everything under
            it). Defaults to ().
        auto_exclude (bool): Also exclude the model's momentum teachers
            (submodules that are averaged models). Defaults to True.
        teacher (str, optional): Use the model's own momentum teacher as the
            EMA, with no second copy; ``momentum`` is then unused (see
            :class:`~sema_mm.ema.ModelTeacher`). ``'auto'`` (default) does
            this for a model with exactly one such teacher (MoCo, BYOL, MoCo
            v3); None keeps a separate EMA.
        nonfinite_check (str, optional): Skip (and warn about) an update
            whose weights are not finite, judged by the logged loss
            (``'loss'``, default, free), by every weight (``'weights'``: one
            fused reduction and a device sync per update) or not at all
            (None). A non-finite EMA is never switched in.
        check_ranks (bool): Under DDP, compare a checksum of every rank's
            EMA at each switch and fail, naming the first differing
            parameter. Defaults to False.
        pullback_threshold (float): Warn before training when the switch
            pulls the model back by more than this (see
            :mod:`sema_mm.switching.pullback`). Defaults to 0.5.
        ema_type (str): Registered averaged model holding the EMA.
            Defaults to ``'FusedEMA'``.
        begin_iter (int): Iteration (0-based) of the first update; the EMA
            is seeded from the weights then. Defaults to 0.
        begin_epoch (int): Epoch (0-based) whose first iteration is the first
            update; exclusive with ``begin_iter``. Defaults to 0.
        shard (bool): Under DDP with W ranks, each rank keeps and updates
            only its 1/W of the EMA (:mod:`sema_mm.sharding.ddp`); the EMA
            is gathered at switches, validation and test, and checkpoints
            (bit-identical results, the same checkpoints). ``ema_model``
            then holds this rank's share (and none of the model's
            buffers); :meth:`full_ema_state_dict` gives the whole EMA, with
            the model's buffers. Needs the default ``ema_type`` and a
            separate EMA (not the model's teacher). Adds nothing in a single
            process or under FSDP, which shards the EMA already. Defaults to
            False.
        strict_load (bool): When resuming, a checkpoint EMA that does not
            fit the model fails (True), or (False) its fitting entries are
            loaded if they cover every averaged tensor, else the EMA starts
            again from the resumed weights, with a warning (also with
            ``shard=True``; under FSDP a checkpoint EMA must always fit).
            mmengine's EMAHook argument of the same name; its default there
            is False. Defaults to True.
        **kwargs: Passed to the averaged model, e.g. ``warmup_iters``,
            ``interval`` or ``device`` (``'cpu'``) for ``FusedEMA``; with
            ``device='cpu'`` and a model on a GPU the updates overlap
            training (``overlap``, ``host_threads``; see
            :mod:`sema_mm.ema.host_offload`).
    """

    priority = 'NORMAL'

    def __init__(self,
                 momentum: float = 1e-3,
                 switch_interval: int = 1,
                 switch_by_epoch: bool = True,
                 switches_per_epoch: int = 1,
                 switch_end: Optional[int] = None,
                 buffers: str = 'params',
                 bn_batches: int = 50,
                 exclude: Sequence[str] = (),
                 auto_exclude: bool = True,
                 teacher: Optional[str] = 'auto',
                 nonfinite_check: Optional[str] = 'loss',
                 check_ranks: bool = False,
                 pullback_threshold: float = 0.5,
                 ema_type: str = 'FusedEMA',
                 begin_iter: int = 0,
                 begin_epoch: int = 0,
                 shard: bool = False,
                 strict_load: bool = True,
                 **kwargs) -> None:
        require(
            isinstance(momentum, (int, float)) and 0 < momentum < 1,
            f'momentum must lie in (0, 1), got {momentum!r}. It is the weight '
            'of the new weights (mmengine convention); the paper\'s alpha '
            'is 1 - momentum.')
        require(
            momentum <= 0.5,
            f'momentum={momentum} looks like a decay in the paper\'s (or '
            'timm\'s) convention. SwitchEMAHook uses mmengine\'s: momentum '
            'is the weight of the new weights. Set momentum=1 - alpha, e.g. '
            f'momentum={1 - momentum:.6g} for alpha={momentum}.')
        self.schedule = SwitchSchedule(switch_interval, switch_by_epoch,
                                       switches_per_epoch, switch_end)
        for name, value in (('bn_batches', bn_batches),
                            ('interval', kwargs.get('interval', 1))):
            require(
                isinstance(value, int) and value >= 1,
                f'{name} must be an int >= 1, got {value!r}.')
        require(
            buffers in NORM_STATS_POLICIES,
            f'buffers must be one of {tuple(NORM_STATS_POLICIES)}, got '
            f'{buffers!r}.')
        self.nonfinite = NonfiniteGuard(nonfinite_check)
        require(0 < pullback_threshold < 1,
                'pullback_threshold must lie in (0, 1), got '
                f'{pullback_threshold!r}.')
        require(
            begin_iter >= 0 and begin_epoch >= 0
            and not (begin_iter and begin_epoch),
            'begin_iter and begin_epoch must be >= 0 and at most one of them '
            f'set (got begin_iter={begin_iter}, begin_epoch={begin_epoch}).')
        require(isinstance(shard, bool),
                f'shard must be True or False, got {shard!r}.')
        require('update_buffers' not in kwargs,
                "use buffers='average' instead of update_buffers=True.")
        check_ema_device(kwargs.get('device'))
        self.ema_type = ema_type
        self.momentum = momentum
        self.ema_options = kwargs
        self.begin_iter = begin_iter
        self.begin_epoch = begin_epoch
        self.strict_load = strict_load
        self.buffers = buffers
        self.norm_stats = NORM_STATS_POLICIES[buffers]
        self.bn_batches = bn_batches
        self.exclude = tuple(exclude)
        self.auto_exclude = auto_exclude
        self.teacher = teacher
        self.check_ranks = check_ranks
        self.shard = shard
        self.pullback_threshold = pullback_threshold
        self.num_switches = 0
        self._resumed_at: Optional[int] = None
        self._built_for: Optional[torch.nn.Module] = None

    @property
    def ema_cfg(self) -> dict:
        """The averaged model's config as mmengine's ``EMAHook`` holds it
        (``type``, ``momentum`` and the further options), for code that
        reads any EMA hook alike."""
        return dict(type=self.ema_type, momentum=self.momentum,
                    **self.ema_options)

    # ------------------------------------------------------------------ build
    def before_run(self, runner) -> None:
        """Check the hook set-up and build the EMA."""
        others = [
            type(h).__name__ for h in runner.hooks
            if isinstance(h, EMAHook) and h is not self
        ]
        require(
            not others,
            f'found another EMA hook ({", ".join(others)}) in the runner. '
            'Keep exactly one EMA-type hook: remove it from `custom_hooks` '
            '(SwitchEMAHook already keeps, evaluates and saves the EMA).')
        self._build_averager(runner)

    def _build_averager(self, runner) -> None:
        """Build the EMA of ``runner.model``, once per model: mmengine's
        ``FlexibleRunner`` resumes before ``before_run``, and a ``test()``
        after ``train()`` keeps the trained EMA."""
        model = runner.model
        if self._built_for is model:
            return
        self._built_for = model
        self.src_model = model.module if is_model_wrapper(model) else model
        self.averager = build_averager(
            self.src_model, self.ema_type, self.momentum, self.ema_options,
            teacher=self.teacher,
            averages_norm_stats=self.norm_stats.averaged,
            exclude=self.exclude, auto_exclude=self.auto_exclude,
            wrapped=model, shard=self.shard)
        self.ema_model = self.averager.ema_model
        self.buffer_ties = (tie_buffers(
            self.ema_model.module, self.src_model, self.averager.pairs.names)
                            if isinstance(self.averager, OwnEMA) else
                            BufferTies([], []))
        self.sync = ModelSync(self.averager.watched_tensors,
                              self.averager.initial_state)

    # ---------------------------------------------------------- checkpoints
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore the EMA and the counters when resuming."""
        if not runner._resume:
            return  # load_from / test: the EMA starts from loaded weights
        self._build_averager(runner)
        self.averager.join()
        state = checkpoint.get('meta', {}).get('switch_ema', {})
        self.num_switches = state.get('num_switches', 0)
        self.nonfinite.skipped = state.get('skipped_updates', 0)
        if self.averager.load(checkpoint, strict=self.strict_load):
            self._resumed_at = checkpoint['meta']['iter']

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Save the EMA (see the averager) and the hook's counters, in
        ``meta['switch_ema']``."""
        self.averager.join()
        self.buffer_ties.refresh()
        checkpoint.setdefault('meta', {})['switch_ema'] = dict(
            num_switches=self.num_switches,
            skipped_updates=self.nonfinite.skipped)
        self.averager.save(checkpoint, ema_is_model=not self.sync.started)

    def prepare_checkpoint(self) -> None:
        """Get the EMA ready for the next checkpoint; a collective: call it
        on every rank. Only ``shard=True`` needs it (it gathers the EMA
        there, as mmengine saves on rank 0 only), and the hook calls it
        itself where ``CheckpointHook`` saves; call it before calling
        ``runner.save_checkpoint`` yourself."""
        if self.sync.started:
            self.averager.prepare_checkpoint(ema_is_model=self.sync.in_sync)

    def full_ema_state_dict(self) -> Dict[str, torch.Tensor]:
        """The whole EMA as a state dict of the (unwrapped) model: the
        EMA's averaged tensors, the model's own for everything else
        (copies). With ``shard=True`` or FSDP it is gathered from the
        ranks: a collective, call it on every rank. Before averaging
        begins (``begin_iter``) the model's weights stand for the EMA."""
        if not self.sync.started:
            return {
                k: v.detach().clone()
                for k, v in self.src_model.state_dict().items()
            }
        return self.averager.full_state()

    # ------------------------------------------------------------- training
    def before_train(self, runner) -> None:
        """Bind the schedule to the loop, then report the pull-back."""
        by_iter_loop = isinstance(runner.train_loop, IterBasedTrainLoop)
        iters_per_epoch = (None if by_iter_loop else len(
            runner.train_dataloader))
        self.schedule = self.schedule.bind(iters_per_epoch, runner.max_epochs,
                                           runner.max_iters)
        if self.begin_epoch:
            require(
                self.begin_epoch < runner.max_epochs,
                f'begin_epoch={self.begin_epoch} is not before the end of '
                f'training (max_epochs={runner.max_epochs}): averaging would '
                'never start.')
            self.begin_iter = self.begin_epoch * iters_per_epoch
        require(
            self.begin_iter < runner.max_iters,
            f'begin_iter={self.begin_iter} is not before the end of training '
            f'(max_iters={runner.max_iters}): averaging would never start.')
        self.averager.start_training(
            self.sync, resumed=self._resumed_at is not None
            and runner.iter > self.begin_iter)
        steps = self.schedule.iters_per_switch / getattr(
            runner.optim_wrapper, '_accumulative_counts', 1)
        updates = self.averager.updates_per_switch(steps)
        momentum = self.averager.update_momentum(self.momentum)
        if updates is not None and momentum is not None:
            log_pullback(
                updates, momentum, self.pullback_threshold,
                self.averager.warmup_momentum_at(),
                momentum_name=self.averager.momentum_name)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        """Seed the EMA from the weights when averaging begins."""
        if not self.sync.started and runner.iter >= self.begin_iter:
            self.averager.seed()
            self.sync.seeded()

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Update the EMA after an optimizer step; switch if one is due."""
        if not self.sync.started:
            return
        if self.averager.after_step(
                getattr(runner.optim_wrapper, 'should_update', lambda: True),
                None if self.nonfinite.mode is None else
                lambda: self.nonfinite.allows_update(runner,
                                                     self.averager.pairs)):
            self.sync.updated()
        if self.schedule.due_after_iter(runner.epoch, batch_idx, runner.iter):
            per_epoch = self.schedule.iters_per_epoch
            self._switch(
                runner, f'iteration {runner.iter + 1}', runner.iter + 1,
                per_epoch and runner.epoch + (batch_idx + 1) / per_epoch)
        if checkpoint_due(runner, 'iter'):
            self.prepare_checkpoint()

    def after_train_epoch(self, runner) -> None:
        """Switch at the end of every ``switch_interval``-th epoch. The EMA
        is complete after this method (its overlapped updates joined)."""
        self.averager.join()
        if self.schedule.due_after_epoch(runner.epoch):
            self._switch(runner, f'the end of epoch {runner.epoch + 1}',
                         runner.iter, runner.epoch + 1)
        self.buffer_ties.refresh()
        if checkpoint_due(runner, 'epoch'):
            self.prepare_checkpoint()

    def _switch(self, runner, where: str, step: int,
                epoch: Optional[float]) -> None:
        """Copy the EMA into the model (the SEMA switch); record it at
        ``step`` (iterations done) and ``epoch`` (progress in epochs)."""
        pairs = self.averager.pairs
        if not self.sync.started or self.sync.in_sync:
            return
        self.averager.join()
        if not self.averager.agree(all_finite(pairs.averaged_tensors())):
            print_log(
                f'SwitchEMAHook: the EMA is not finite at {where}; it was '
                'not switched into the model.',
                logger='current', level=logging.WARNING)
            return
        self.num_switches += 1
        distance = pairs.relative_distance()
        context = SwitchContext(
            model=self.averager.forward_model(),
            ema_module=self.ema_model.module,
            skip=self.averager.excluded,
            train_loader=runner.train_dataloader,
            bn_batches=self.bn_batches, seed=runner.seed + self.num_switches)
        if self.norm_stats.before_switch:
            self.norm_stats.before_switch(context)
        if self.check_ranks:  # after the EMA's statistics were averaged
            self.averager.check_ranks(where)
        pairs.copy_to_source()
        message = (f'SwitchEMAHook: switch {self.num_switches} at {where} '
                   f'(moved the model by {distance:.3g} of its norm)')
        if self.norm_stats.after_switch:
            message += self.norm_stats.after_switch(context)
        self.sync.switched()
        record_switch(runner, step, distance, self.num_switches,
                      self.nonfinite.skipped, epoch)
        print_log(message, logger='current')

    def after_train(self, runner) -> None:
        """Finish the EMA's overlapped updates and stop their worker;
        leave ``ema_model.module`` with the model's buffers."""
        self.averager.close()
        self.buffer_ties.refresh()

    # --------------------------------------------------- validation / test
    def _swap(self) -> None:
        """Exchange the EMA and the model's averaged tensors (fused).

        Always swapped once averaging has begun, also right after a switch
        when the two are equal: a swap of equal tensors changes nothing, and
        weights changed by other code since the switch are then still
        handled right.
        """
        self.averager.join()
        self.buffer_ties.refresh()
        if self.sync.started:
            self.averager.pairs.swap()

    def before_val_epoch(self, runner) -> None:
        """Evaluate (or test) the EMA."""
        self._swap()

    def after_val_epoch(self, runner, metrics=None) -> None:
        """Restore the model's weights (and get the EMA ready for a best
        checkpoint)."""
        self._swap()
        if best_checkpoint_possible(runner):
            self.prepare_checkpoint()

    def after_test_epoch(self, runner, metrics=None) -> None:
        """Restore the model's weights."""
        self._swap()

    before_test_epoch = before_val_epoch
