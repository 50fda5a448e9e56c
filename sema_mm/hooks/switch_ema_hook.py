"""SwitchEMAHook: Switch EMA (SEMA) for the mmengine Runner.

SEMA (Li et al., "Switch EMA: A Free Lunch for Better Flatness and
Sharpness", Algorithm 1) keeps an exponential moving average of the weights
and, at the end of every epoch, copies it back into the training model, which
keeps training from there::

    ema = copy(model)                          # when averaging begins
    for epoch in range(max_epochs):
        for batch in loader:
            step(model, batch)                 # forward, backward, optimizer
            ema = (1 - m) * ema + m * model  # m = 1 - alpha (mmengine)
        model = ema                  # the switch; optimizer state kept
        validate(model); save(model)

:class:`SwitchEMAHook` is mmengine's :class:`~mmengine.hooks.EMAHook` with that
switch added. Everything EMAHook does still holds: the average is a registered
averaged model (``ema_type``), validation and test see the EMA, each
checkpoint's ``state_dict`` holds the EMA (deployable as is) and
``ema_state_dict`` what resuming needs. The averaging itself lives in
:class:`~sema_mm.models.FusedEMA`; this file decides *when* to seed, update
and switch, and *what* is switched.
"""
import logging
import math
from typing import Dict, Optional, Sequence, Set

import torch
from mmengine.dist import all_gather, get_rank, get_world_size
from mmengine.hooks import EMAHook
from mmengine.logging import print_log
from mmengine.model import BaseAveragedModel, is_model_wrapper
from mmengine.registry import HOOKS, MODELS
from mmengine.runner import IterBasedTrainLoop

from ..models.fused_ema import FusedEMA, select_averaged_names
from ..models.tensor_pairs import TensorPairs, all_finite
from .bn_recalibration import average_norm_stats, recalibrate_bn
from .switch_guard import log_pullback
from .teachers import find_momentum_teachers, teacher_pairs

BUFFER_POLICIES = ('params', 'average', 'recompute')
NONFINITE_CHECKS = ('loss', 'weights', None)


def _require(ok: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``ok``."""
    if not ok:
        raise ValueError(f'SwitchEMAHook: {message}')


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
        _require(
            isinstance(momentum, (int, float)) and 0 < momentum < 1,
            f'momentum must lie in (0, 1), got {momentum!r}. It is the weight '
            'of the new weights (mmengine convention); the paper\'s alpha '
            'is 1 - momentum.')
        _require(
            momentum <= 0.5,
            f'momentum={momentum} looks like a decay in the paper\'s (or '
            'timm\'s) convention. SwitchEMAHook uses mmengine\'s: momentum '
            'is the weight of the new weights. Set momentum=1 - alpha, e.g. '
            f'momentum={1 - momentum:.6g} for alpha={momentum}.')
        for name, value in (('switch_interval', switch_interval),
                            ('switches_per_epoch', switches_per_epoch),
                            ('bn_batches', bn_batches),
                            ('interval', kwargs.get('interval', 1))):
            _require(
                isinstance(value, int) and value >= 1,
                f'{name} must be an int >= 1, got {value!r}.')
        _require(
            switches_per_epoch == 1 or (switch_by_epoch
                                        and switch_interval == 1),
            'switches_per_epoch > 1 needs switch_by_epoch=True and '
            f'switch_interval=1 (got switch_by_epoch={switch_by_epoch}, '
            f'switch_interval={switch_interval}).')
        _require(switch_end is None or switch_end >= 1,
                 f'switch_end must be None or >= 1, got {switch_end!r}.')
        _require(buffers in BUFFER_POLICIES,
                 f'buffers must be one of {BUFFER_POLICIES}, got {buffers!r}.')
        _require(
            nonfinite_check in NONFINITE_CHECKS,
            f'nonfinite_check must be one of {NONFINITE_CHECKS}, got '
            f'{nonfinite_check!r}.')
        _require(0 < pullback_threshold < 1,
                 'pullback_threshold must lie in (0, 1), got '
                 f'{pullback_threshold!r}.')
        _require(
            begin_iter >= 0 and begin_epoch >= 0
            and not (begin_iter and begin_epoch),
            'begin_iter and begin_epoch must be >= 0 and at most one of them '
            f'set (got begin_iter={begin_iter}, begin_epoch={begin_epoch}).')
        _require(
            'update_buffers' not in kwargs,
            "use buffers='average' instead of update_buffers=True.")
        super().__init__(
            ema_type=ema_type,
            strict_load=True,
            begin_iter=begin_iter,
            begin_epoch=begin_epoch,
            momentum=momentum,
            **kwargs)
        self.momentum = momentum
        self.switch_interval = switch_interval
        self.switch_by_epoch = switch_by_epoch
        self.switches_per_epoch = switches_per_epoch
        self.switch_end = switch_end
        self.buffers = buffers
        self.bn_batches = bn_batches
        self.exclude = tuple(exclude)
        self.auto_exclude = auto_exclude
        self.teacher = teacher
        self.teacher_name: Optional[str] = None
        self.excluded: tuple = ()
        self.nonfinite_check = nonfinite_check
        self.check_ranks = check_ranks
        self.pullback_threshold = pullback_threshold
        self.num_switches = 0
        self._in_epoch_switches: Set[int] = set()
        self._loaded_ema_iter: Optional[int] = None
        self._skipped_updates = 0

    # ------------------------------------------------------------------ build
    def before_run(self, runner) -> None:
        """Check the hook set-up and build the EMA copy of the model."""
        others = [
            type(h).__name__ for h in runner.hooks
            if isinstance(h, EMAHook) and h is not self
        ]
        _require(
            not others,
            f'found another EMA hook ({", ".join(others)}) in the runner. '
            'Keep exactly one EMA-type hook: remove it from `custom_hooks` '
            '(SwitchEMAHook already keeps, evaluates and saves the EMA).')
        model = runner.model
        self.src_model = model.module if is_model_wrapper(model) else model
        # Until averaging begins the EMA is, by definition, the model.
        self._needs_seed = True
        self._ema_equals_model = True
        if self._use_model_teacher():
            return
        ema_cls = self._resolve_ema_type(self.ema_cfg['type'])
        cfg = {k: v for k, v in self.ema_cfg.items() if k != 'type'}
        cfg['update_buffers'] = self.buffers == 'average'
        exclude = list(self.exclude)
        if self.auto_exclude:
            exclude += find_momentum_teachers(self.src_model)
        self.excluded = tuple(exclude)
        if issubclass(ema_cls, FusedEMA):
            cfg['exclude'] = self.excluded
        try:
            self.ema_model = ema_cls(model=self.src_model, **cfg)
        except TypeError as e:
            raise ValueError(
                f'SwitchEMAHook: ema_type={ema_cls.__name__} does not accept '
                f'the arguments {sorted(cfg)}: {e}. Options such as '
                'warmup_iters belong to the default ema_type FusedEMA.') from e
        names = (
            self.ema_model.averaged_names
            if isinstance(self.ema_model, FusedEMA) else
            select_averaged_names(self.ema_model.module,
                                  cfg['update_buffers'], self.excluded))
        self._pairs = (
            self.ema_model.pairs_for(self.src_model)
            if isinstance(self.ema_model, FusedEMA) else TensorPairs(
                self.ema_model.module, self.src_model, names))
        if self.excluded:
            print_log(
                'SwitchEMAHook: kept out of averaging and switching: '
                f'{", ".join(self.excluded)}', logger='current')

    def _use_model_teacher(self) -> bool:
        """Adopt the model's momentum teacher as the EMA if configured."""
        if self.teacher is None:
            return False
        found = find_momentum_teachers(self.src_model)
        if self.teacher != 'auto':
            _require(
                self.teacher in found,
                f'teacher={self.teacher!r} is not an averaged-model '
                f'submodule of the model (found: {found}).')
            found = [self.teacher]
        pairs = teacher_pairs(self.src_model, found[0]) \
            if len(found) == 1 else None
        _require(
            pairs is not None or self.teacher == 'auto',
            f'the teacher {self.teacher!r} is not a copy of top-level '
            'modules of the model, so it cannot be switched into them; '
            'set teacher=None to keep a separate EMA.')
        if pairs is None:
            return False
        _require(
            self.buffers != 'average',
            "buffers='average' needs a separate EMA; with the model's "
            "teacher use buffers='params' or 'recompute', or teacher=None.")
        self.teacher_name = found[0]
        self.ema_model = self.src_model.get_submodule(self.teacher_name)
        self._pairs = TensorPairs(self.src_model, self.src_model,
                                  [t for t, _ in pairs],
                                  [o for _, o in pairs])
        self._needs_seed = False
        self._ema_equals_model = False
        print_log(
            f'SwitchEMAHook: the model\'s momentum teacher '
            f'`{self.teacher_name}` is the EMA (its own momentum schedule; '
            f'`momentum` is unused); each switch copies it into '
            f'{sorted({o.split(".")[0] for _, o in pairs})}.',
            logger='current')
        return True

    @staticmethod
    def _resolve_ema_type(ema_type: str) -> type:
        """Look ``ema_type`` up in the current scope's MODELS registry."""
        with MODELS.switch_scope_and_registry(None) as registry:
            ema_cls = registry.get(ema_type)
        _require(
            isinstance(ema_cls, type) and issubclass(ema_cls,
                                                     BaseAveragedModel),
            f'unknown ema_type {ema_type!r}: it must name a registered '
            'subclass of mmengine BaseAveragedModel, e.g. FusedEMA (default), '
            "ExponentialMovingAverage, or mmdet's ExpMomentumEMA (with "
            "default_scope='mmdet').")
        return ema_cls

    # ---------------------------------------------------------- checkpoints
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore the EMA when resuming; check it matches the model."""
        if not runner._resume:
            return  # load_from / test: the EMA starts from loaded weights
        state = checkpoint.get('meta', {}).get('switch_ema', {})
        self.num_switches = state.get('num_switches', 0)
        self._skipped_updates = state.get('skipped_updates', 0)
        if self.teacher_name:
            return  # the teacher is part of the model's state_dict
        if 'ema_state_dict' not in checkpoint:
            print_log(
                'SwitchEMAHook: the resumed checkpoint has no '
                '`ema_state_dict`; the EMA starts again from the resumed '
                'weights.', logger='current', level=logging.WARNING)
            return
        ema_state = checkpoint['ema_state_dict']
        self._check_ema_state(ema_state)
        self._swap_state_dicts(checkpoint['state_dict'], ema_state)
        self.ema_model.load_state_dict(ema_state, strict=True)
        self._loaded_ema_iter = checkpoint['meta']['iter']

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

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Save the EMA: ``state_dict`` gets the averaged tensors (ready to
        deploy), ``ema_state_dict`` the model's own, for resuming. A model
        teacher is saved with the model. The hook's counters go into
        ``meta['switch_ema']``."""
        checkpoint.setdefault('meta', {})['switch_ema'] = dict(
            num_switches=self.num_switches,
            skipped_updates=self._skipped_updates)
        if self.teacher_name:
            return
        ema_state = self.ema_model.state_dict()
        model_state = checkpoint['state_dict']
        averaged = set(self._pairs.names)
        for name in model_state:
            key = 'module.' + name
            if key in ema_state and (name not in averaged
                                     or self._ema_equals_model):
                # Not averaged, or equal to the model: store the model's.
                ema_state[key] = model_state[name]
        self._swap_state_dicts(model_state, ema_state)
        checkpoint['ema_state_dict'] = ema_state

    def _swap_state_dicts(self, model_state: Dict, ema_state: Dict) -> None:
        """Exchange the averaged entries of the two state dicts."""
        for name in self._pairs.names:
            if name in model_state:
                key = 'module.' + name
                model_state[name], ema_state[key] = (ema_state[key],
                                                     model_state[name])

    # ------------------------------------------------------------- training
    def before_train(self, runner) -> None:
        """Check the schedule against the loop, then report the pull-back."""
        loop = runner.train_loop
        by_iter_loop = isinstance(loop, IterBasedTrainLoop)
        _require(
            not (self.switch_by_epoch and by_iter_loop),
            'the train loop is iteration-based, so an epoch never ends during '
            'training. Set switch_by_epoch=False and switch_interval to a '
            'number of iterations.')
        iters_per_epoch = (None if by_iter_loop else len(
            runner.train_dataloader))
        if self.begin_epoch:
            _require(
                self.begin_epoch < runner.max_epochs,
                f'begin_epoch={self.begin_epoch} is not before the end of '
                f'training (max_epochs={runner.max_epochs}): averaging would '
                'never start.')
            self.begin_iter = self.begin_epoch * iters_per_epoch
        _require(
            self.begin_iter < runner.max_iters,
            f'begin_iter={self.begin_iter} is not before the end of training '
            f'(max_iters={runner.max_iters}): averaging would never start.')
        unit_max = runner.max_epochs if self.switch_by_epoch else \
            runner.max_iters
        unit = 'epochs' if self.switch_by_epoch else 'iterations'
        _require(
            self.switch_end is None or self.switch_end <= unit_max,
            f'switch_end={self.switch_end} is beyond the end of training '
            f'({unit_max} {unit}).')
        if self.switch_interval > unit_max:
            print_log(
                f'SwitchEMAHook: switch_interval={self.switch_interval} '
                f'{unit} is longer than training ({unit_max} {unit}); the EMA '
                'will never be switched into the model.',
                logger='current', level=logging.WARNING)
        if self.switches_per_epoch > 1:
            _require(
                self.switches_per_epoch <= iters_per_epoch,
                f'switches_per_epoch={self.switches_per_epoch} exceeds the '
                f'{iters_per_epoch} iterations of an epoch.')
            n = self.switches_per_epoch
            self._in_epoch_switches = {
                round(k * iters_per_epoch / n)
                for k in range(1, n)
            }
        if self.teacher_name:
            return  # the model updates its teacher itself
        resumed = (self._loaded_ema_iter is not None
                   and runner.iter > self.begin_iter)
        self._needs_seed = not resumed
        self._ema_equals_model = self._needs_seed
        log_pullback(self, runner, iters_per_epoch)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        """Seed the EMA from the weights when averaging begins."""
        if self._needs_seed and runner.iter >= self.begin_iter:
            if isinstance(self.ema_model, FusedEMA):
                self.ema_model.seed(self.src_model)
            else:
                self._pairs.copy_to_averaged()
                self.ema_model.steps.fill_(1)
            self._needs_seed = False
            self._ema_equals_model = True

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Update the EMA after an optimizer step; switch if one is due."""
        if self._needs_seed:
            return
        if self.teacher_name:
            self._ema_equals_model = False  # the model moved its teacher
        elif getattr(runner.optim_wrapper, 'should_update', lambda: True)():
            if self._weights_finite(runner):
                self.ema_model.update_parameters(self.src_model)
                self._ema_equals_model = False
        done = runner.iter + 1
        if self.switch_by_epoch:
            due = (batch_idx + 1 in self._in_epoch_switches
                   and self._before_end(runner.epoch + 1))
        else:
            due = (done % self.switch_interval == 0
                   and self._before_end(done))
        if due:
            self._switch(runner, f'iteration {done}')

    def after_train_epoch(self, runner) -> None:
        """Switch at the end of every ``switch_interval``-th epoch."""
        done = runner.epoch + 1
        if (self.switch_by_epoch and done % self.switch_interval == 0
                and self._before_end(done)):
            self._switch(runner, f'the end of epoch {done}')

    def _before_end(self, count: int) -> bool:
        return self.switch_end is None or count <= self.switch_end

    def _weights_finite(self, runner) -> bool:
        """Whether this iteration's weights may enter the average."""
        if self.nonfinite_check == 'loss':
            loss = runner.message_hub.log_scalars.get('train/loss')
            finite = loss is None or math.isfinite(loss.current())
        elif self.nonfinite_check == 'weights':
            finite = all_finite(self._pairs.source_tensors())
        else:
            finite = True
        if not finite:
            self._skipped_updates += 1
            print_log(
                f'SwitchEMAHook: non-finite weights at iteration '
                f'{runner.iter + 1} were not averaged into the EMA '
                f'({self._skipped_updates} updates skipped so far).',
                logger='current', level=logging.WARNING)
        return finite

    def _switch(self, runner, where: str) -> None:
        """Copy the EMA into the model (the SEMA switch)."""
        if self._needs_seed or self._ema_equals_model:
            return
        if not all_finite(self._pairs.averaged_tensors()):
            print_log(
                f'SwitchEMAHook: the EMA is not finite at {where}; it was '
                'not switched into the model.',
                logger='current', level=logging.WARNING)
            return
        if self.check_ranks:
            self._check_ranks_agree(where)
        if self.buffers == 'average':  # the averaged BN statistics
            average_norm_stats(self.ema_model.module)
        self._pairs.copy_to_source()
        self._ema_equals_model = True
        self.num_switches += 1
        message = f'SwitchEMAHook: switch {self.num_switches} at {where}'
        if self.buffers == 'recompute':
            n = recalibrate_bn(self.src_model, runner.train_dataloader,
                               self.bn_batches,
                               seed=runner.seed + self.num_switches)
            message += f'; BN statistics recomputed from {n} batches'
        elif self.buffers == 'params':  # the model's own BN statistics
            average_norm_stats(self.src_model,
                               skip=(self.teacher_name, ) if self.teacher_name
                               else self.excluded)
        print_log(message, logger='current')

    @torch.no_grad()
    def _check_ranks_agree(self, where: str) -> None:
        """Fail if the ranks' EMAs differ (one all_gather of checksums)."""
        if get_world_size() == 1:
            return
        tensors = self._pairs.averaged_tensors()
        local = torch.stack([
            torch.stack([t.sum(dtype=torch.float64),
                         t.double().norm()]) for t in tensors
        ]).flatten()
        for rank, other in enumerate(all_gather(local)):
            if torch.equal(other.cpu(), local.cpu()):
                continue
            index = int((other.cpu() != local.cpu()).nonzero()[0]) // 2
            raise RuntimeError(
                f'SwitchEMAHook: at {where}, the EMA of rank {get_rank()} '
                f'differs from that of rank {rank}; first differing '
                f'parameter: `{self._pairs.grouped_names[index]}`. The ranks '
                'no longer train the same model: check for rank-dependent '
                'code or a missing gradient synchronisation.')

    # --------------------------------------------------- validation / test
    def _swap_ema_parameters(self) -> None:
        """Swap the averaged tensors of the model and the EMA (fused); a
        no-op while they are equal, e.g. right after a switch."""
        if not self._ema_equals_model:
            self._pairs.swap()
