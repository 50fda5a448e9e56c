"""Whether mmengine's ``CheckpointHook`` saves at this point of training.

mmengine saves checkpoints on rank 0 only (``Runner.save_checkpoint`` is
``@master_only``), so an EMA spread over the ranks
(``SwitchEMAHook(shard=True)``) must be gathered before, at a point every
rank passes. ``SwitchEMAHook`` runs before ``CheckpointHook`` (priority
``NORMAL`` before ``VERY_LOW``) in the same hook calls, and asks here
whether a save follows, with ``CheckpointHook``'s own rules:

* after a training iteration (``by_epoch=False``) and after a training
  epoch (``by_epoch=True``): every ``interval`` from ``save_begin``, or
  the last one with ``save_last``;
* after a validation epoch: whenever ``save_best`` is set (whether the
  metric improved is only known inside ``CheckpointHook``).
"""
from mmengine.hooks import CheckpointHook


def _checkpoint_hooks(runner):
    return [h for h in runner.hooks if isinstance(h, CheckpointHook)]


def checkpoint_due(runner, after: str) -> bool:
    """Whether a ``CheckpointHook`` of ``runner`` saves at the end of this
    training ``after`` (``'iter'`` or ``'epoch'``), in the same hook call.
    """
    by_epoch = after == 'epoch'
    for hook in _checkpoint_hooks(runner):
        if hook.by_epoch != by_epoch:
            continue
        start = getattr(hook, 'save_begin', 0)
        if by_epoch:
            due = hook.every_n_epochs(runner, hook.interval, start) or (
                hook.save_last and hook.is_last_train_epoch(runner))
        else:
            due = hook.every_n_train_iters(runner, hook.interval, start) or (
                hook.save_last and hook.is_last_train_iter(runner))
        if due:
            return True
    return False


def best_checkpoint_possible(runner) -> bool:
    """Whether a ``CheckpointHook`` of ``runner`` may save a best
    checkpoint after this validation epoch (``save_best`` is set)."""
    return any(h.save_best for h in _checkpoint_hooks(runner))
