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
import math
from typing import Optional, Sequence

from mmengine.hooks import EMAHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

from ..ema.averagers import build_averager
from ..ema.sync_state import ModelSync
from ..ema.tensor_pairs import all_finite
from ..errors import require
from ..switching.norm_stats import NORM_STATS_POLICIES, SwitchContext
from ..switching.pullback import log_pullback
from ..switching.rank_check import check_ranks_agree
from ..switching.schedule import SwitchSchedule

NONFINITE_CHECKS = ('loss', 'weights', None)


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

    The hook only decides *when* to seed, update, switch and save; *what* is
    averaged and how lives in an :class:`~sema_mm.ema.averagers.Averager`
    (a separate EMA, or the model's own momentum teacher), the switch
    points in a :class:`~sema_mm.switching.SwitchSchedule`, the relation of
    EMA and model in a :class:`~sema_mm.ema.sync_state.ModelSync`, and what
    happens to normalisation statistics in
    :data:`~sema_mm.switching.norm_stats.NORM_STATS_POLICIES`.

    It subclasses mmengine's :class:`~mmengine.hooks.EMAHook` for identity
    only (code that looks for an EMA hook with ``isinstance(h, EMAHook)``
    finds it, and it refuses to run beside another): every hook method is
    its own and nothing of EMAHook's implementation is used. Like EMAHook,
    validation and test see the EMA (swapped in, then back), and
    ``ema_model`` is the averaged model.

    Args:
        momentum (float): Weight of the new weights in each EMA update,
            mmengine's convention: ``ema = (1 - momentum) * ema + momentum *
            weights``. The paper's (and timm's) decay ``alpha`` is ``1 -
            momentum``: alpha = 0.999 is ``momentum=1e-3`` (the default).
            Must lie in (0, 0.5].
        switch_interval (int): Switch every ``switch_interval`` epochs
            (``switch_by_epoch=True``) or iterations. Defaults to 1.
        switch_by_epoch (bool): Count ``switch_interval`` in epochs (switch
            in ``after_train_epoch``) or in iterations (switch after the
            EMA update of every ``switch_interval``-th iteration; use this for
            ``IterBasedTrainLoop``). Defaults to True.
        switches_per_epoch (int): With ``switch_by_epoch``, switch this many
            times per epoch, at evenly spaced iterations, the last one at the
            epoch end: 2 is the paper's half-epoch switching (Table 13), and
            3 switches once per pass over a ``RepeatDataset(times=3)``.
            Needs ``switch_interval=1``. Defaults to 1.
        switch_end (int, optional): The last epoch (``switch_by_epoch``) or
            iteration, counted from 1, after which a switch may happen;
            later the hook keeps a plain EMA. Defaults to None (switch until
            the end).
        buffers (str): What happens to buffers. ``'params'`` (default, as in
            the paper): only parameters are averaged and switched; the model
            keeps its own BN statistics. ``'average'``: the running
            statistics of normalisation layers are averaged and switched too.
            ``'recompute'``: as ``'params'``, then after each switch the BN
            statistics are recomputed from ``bn_batches`` training batches
            (averaged over ranks).
        bn_batches (int): Batches used by ``buffers='recompute'``.
            Defaults to 50.
        exclude (Sequence[str]): Names of parameters, buffers or modules
            kept out of averaging and switching (a name covers everything
            under it, e.g. ``'encoder_k'``). Defaults to ().
        auto_exclude (bool): Also exclude every submodule that is itself an
            averaged model, i.e. the momentum teachers of MoCo
            (``encoder_k``), BYOL (``target_net``) and MoCo v3
            (``momentum_encoder``) in mmpretrain and mmselfsup. Their queues
            and counters are buffers and are never averaged. Defaults to
            True.
        teacher (str, optional): Use the model's own momentum teacher (the
            named averaged-model submodule) as the EMA instead of keeping a
            second copy: the model keeps updating it as it always does, and
            each switch copies its parameters into the online modules it
            follows (e.g. ``encoder_k.module.0`` into ``backbone``). The
            teacher, its momentum schedule and queues are never touched, and
            ``momentum`` is unused. ``'auto'`` (default) does this when the
            model has exactly one teacher that copies top-level modules of
            the model (mmpretrain's and mmselfsup's MoCo, BYOL, MoCo v3),
            and keeps a separate EMA otherwise; None always keeps a separate
            EMA.
        nonfinite_check (str, optional): How an update with non-finite
            weights is detected and skipped (with a warning). ``'loss'``
            (default): the iteration's loss as logged by mmengine is not
            finite; costs nothing. ``'weights'``: every weight is checked
            with one fused reduction per update, which costs one extra read
            of the weights and a device synchronisation per iteration.
            ``None``: no check. Independently of this, a non-finite EMA is
            never switched into the model.
        check_ranks (bool): Under distributed training, compare a checksum
            of every rank's EMA with one collective at each switch and fail,
            naming the first differing parameter, if the ranks disagree.
            Costs one reduction over the EMA per switch. Defaults to False.
        pullback_threshold (float): Warn before training when, after one
            switch interval, the EMA still gives more than this weight to the
            weights of the previous switch, i.e. ``(1 - momentum) **
            updates_per_switch`` (see ``switch_guard``). Defaults to 0.5.
        ema_type (str): Registered averaged model holding the EMA.
            Defaults to ``'FusedEMA'``; mmengine's
            ``'ExponentialMovingAverage'`` and mmdet's ``'ExpMomentumEMA'``
            work too (with their own, per-tensor update).
        begin_iter (int): Iteration (0-based) of the first EMA update.
            Mutually exclusive with ``begin_epoch``. Defaults to 0.
        begin_epoch (int): Epoch (0-based) whose first iteration is the first
            EMA update. Defaults to 0.
        **kwargs: Passed to the averaged model, e.g. ``warmup_iters``,
            ``interval`` or ``device`` for ``FusedEMA``.
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
        require(
            nonfinite_check in NONFINITE_CHECKS,
            f'nonfinite_check must be one of {NONFINITE_CHECKS}, got '
            f'{nonfinite_check!r}.')
        require(0 < pullback_threshold < 1,
                'pullback_threshold must lie in (0, 1), got '
                f'{pullback_threshold!r}.')
        require(
            begin_iter >= 0 and begin_epoch >= 0
            and not (begin_iter and begin_epoch),
            'begin_iter and begin_epoch must be >= 0 and at most one of them '
            f'set (got begin_iter={begin_iter}, begin_epoch={begin_epoch}).')
        require('update_buffers' not in kwargs,
                "use buffers='average' instead of update_buffers=True.")
        self.ema_cfg = dict(type=ema_type, momentum=momentum, **kwargs)
        self.momentum = momentum
        self.begin_iter = begin_iter
        self.begin_epoch = begin_epoch
        self.buffers = buffers
        self.norm_stats = NORM_STATS_POLICIES[buffers]
        self.bn_batches = bn_batches
        self.exclude = tuple(exclude)
        self.auto_exclude = auto_exclude
        self.teacher = teacher
        self.nonfinite_check = nonfinite_check
        self.check_ranks = check_ranks
        self.pullback_threshold = pullback_threshold
        self.num_switches = 0
        self.skipped_updates = 0
        self._resumed_at: Optional[int] = None

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
        model = runner.model
        self.src_model = model.module if is_model_wrapper(model) else model
        self.averager = build_averager(
            self.src_model, self.ema_cfg, teacher=self.teacher,
            averages_norm_stats=self.norm_stats.averaged,
            exclude=self.exclude, auto_exclude=self.auto_exclude)
        self.ema_model = self.averager.ema_model
        self.sync = ModelSync(self.averager.pairs.source_tensors,
                              self.averager.initial_state)

    # ---------------------------------------------------------- checkpoints
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore the EMA and the counters when resuming."""
        if not runner._resume:
            return  # load_from / test: the EMA starts from loaded weights
        state = checkpoint.get('meta', {}).get('switch_ema', {})
        self.num_switches = state.get('num_switches', 0)
        self.skipped_updates = state.get('skipped_updates', 0)
        if self.averager.load(checkpoint):
            self._resumed_at = checkpoint['meta']['iter']

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Save the EMA (see the averager) and the hook's counters, in
        ``meta['switch_ema']``."""
        checkpoint.setdefault('meta', {})['switch_ema'] = dict(
            num_switches=self.num_switches,
            skipped_updates=self.skipped_updates)
        self.averager.save(checkpoint, ema_is_model=not self.sync.started)

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
        if self.averager.updated_by_model:
            return  # the model updates its teacher itself
        if self._resumed_at is not None and runner.iter > self.begin_iter:
            self.sync.updated()
        else:
            self.sync.restart()
        steps = self.schedule.iters_per_switch / getattr(
            runner.optim_wrapper, '_accumulative_counts', 1)
        log_pullback(self.averager.updates_per_switch(steps), self.momentum,
                     self.pullback_threshold,
                     self.averager.warmup_momentum_at())

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
        if self.averager.updated_by_model:
            self.sync.updated()
        elif getattr(runner.optim_wrapper, 'should_update', lambda: True)():
            if self._weights_finite(runner):
                self.averager.update()
                self.sync.updated()
        if self.schedule.due_after_iter(runner.epoch, batch_idx, runner.iter):
            self._switch(runner, f'iteration {runner.iter + 1}')

    def after_train_epoch(self, runner) -> None:
        """Switch at the end of every ``switch_interval``-th epoch."""
        if self.schedule.due_after_epoch(runner.epoch):
            self._switch(runner, f'the end of epoch {runner.epoch + 1}')

    def _weights_finite(self, runner) -> bool:
        """Whether this iteration's weights may enter the average."""
        if self.nonfinite_check == 'loss':
            loss = runner.message_hub.log_scalars.get('train/loss')
            finite = loss is None or math.isfinite(loss.current())
        elif self.nonfinite_check == 'weights':
            finite = all_finite(self.averager.pairs.source_tensors())
        else:
            finite = True
        if not finite:
            self.skipped_updates += 1
            print_log(
                f'SwitchEMAHook: non-finite weights at iteration '
                f'{runner.iter + 1} were not averaged into the EMA '
                f'({self.skipped_updates} updates skipped so far).',
                logger='current', level=logging.WARNING)
        return finite

    def _switch(self, runner, where: str) -> None:
        """Copy the EMA into the model (the SEMA switch)."""
        pairs = self.averager.pairs
        if not self.sync.started or self.sync.in_sync:
            return
        if not all_finite(pairs.averaged_tensors()):
            print_log(
                f'SwitchEMAHook: the EMA is not finite at {where}; it was '
                'not switched into the model.',
                logger='current', level=logging.WARNING)
            return
        if self.check_ranks:
            check_ranks_agree(pairs, where)
        self.num_switches += 1
        context = SwitchContext(
            model=self.src_model, ema_module=self.ema_model.module,
            skip=self.averager.excluded,
            train_loader=runner.train_dataloader,
            bn_batches=self.bn_batches, seed=runner.seed + self.num_switches)
        if self.norm_stats.before_switch:
            self.norm_stats.before_switch(context)
        pairs.copy_to_source()
        message = f'SwitchEMAHook: switch {self.num_switches} at {where}'
        if self.norm_stats.after_switch:
            message += self.norm_stats.after_switch(context)
        self.sync.switched()
        print_log(message, logger='current')

    # --------------------------------------------------- validation / test
    def _swap(self) -> None:
        """Exchange the EMA and the model's averaged tensors (fused).

        Always swapped once averaging has begun, also right after a switch
        when the two are equal: a swap of equal tensors changes nothing, and
        weights changed by other code since the switch are then still
        handled right.
        """
        if self.sync.started:
            self.averager.pairs.swap()

    def before_val_epoch(self, runner) -> None:
        """Evaluate the EMA."""
        self._swap()

    def after_val_epoch(self, runner, metrics=None) -> None:
        """Restore the model's weights."""
        self._swap()

    def before_test_epoch(self, runner) -> None:
        """Test the EMA."""
        self._swap()

    def after_test_epoch(self, runner, metrics=None) -> None:
        """Restore the model's weights."""
        self._swap()
