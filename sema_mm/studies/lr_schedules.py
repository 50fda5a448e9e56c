"""A learning-rate scheduler holding a fixed fraction of the initial LR.

Used by the ``swa`` variant (:mod:`sema_mm.comparison.variants`): after the
config's own schedule has ended, SWA trains on at a constant learning rate
while it averages the weights. mmengine's schedulers are chained (each
multiplies the value the previous one left), so after a cosine schedule that
ends at 0 none of them can bring the LR back; this one sets it outright.
"""
from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
from mmengine.registry import PARAM_SCHEDULERS


@PARAM_SCHEDULERS.register_module()
class SWAConstantLR(LRSchedulerMixin, _ParamScheduler):
    """Set every group's LR to ``factor`` times its initial LR in
    ``[begin, end)``.

    Args:
        optimizer (Optimizer or OptimWrapper): The wrapped optimizer.
        factor (float): Fraction of each group's initial LR (``initial_lr``,
            recorded by the first scheduler that saw the group). Defaults to
            0.1.
        begin (int): First step (epoch or iteration) it applies to.
            Defaults to 0.
        end (int): Step at which it stops. Defaults to INF.
        last_step (int): As for mmengine's schedulers. Defaults to -1.
        by_epoch (bool): Count steps in epochs. Defaults to True.
        verbose (bool): Print each change. Defaults to False.
    """

    def __init__(self,
                 optimizer,
                 factor: float = 0.1,
                 begin: int = 0,
                 end: int = INF,
                 last_step: int = -1,
                 by_epoch: bool = True,
                 verbose: bool = False) -> None:
        if factor <= 0:
            raise ValueError(f'factor must be > 0, got {factor}')
        self.factor = factor
        super().__init__(
            optimizer,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose)

    def _get_value(self):
        """The held value of every group."""
        return [base * self.factor for base in self.base_values]
