"""A test-only hook saving each rank's weights and EMA after every epoch.

Import it from a config with
``custom_imports=dict(imports=['tests.rank_probe'])`` and add
``dict(type='RankProbeHook')`` to ``custom_hooks``. At
``after_train_epoch`` with priority ``'LOW'``, i.e. after ``SwitchEMAHook``
(``'NORMAL'``) has switched the EMA into the model and before the checkpoint
is saved, every rank writes ``work_dir/rank{rank}_epoch{epoch}.pth`` with the
model's ``state_dict`` (``model``) and the EMA's (``ema``).
"""
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from sema_mm.hooks import SwitchEMAHook


@HOOKS.register_module()
class RankProbeHook(Hook):
    """Save this rank's model and EMA state after every training epoch."""

    priority = 'LOW'

    def after_train_epoch(self, runner) -> None:
        """Write ``rank{rank}_epoch{epoch}.pth`` into the work dir."""
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        ema_hooks = [h for h in runner.hooks if isinstance(h, SwitchEMAHook)]
        assert len(ema_hooks) == 1, 'RankProbeHook needs one SwitchEMAHook'
        state = dict(
            model=model.state_dict(),
            ema=ema_hooks[0].ema_model.state_dict(),
            num_switches=ema_hooks[0].num_switches,
            world_size=runner.world_size,
            wrapper=type(runner.model).__name__)
        torch.save(
            state,
            osp.join(runner.work_dir,
                     f'rank{runner.rank}_epoch{runner.epoch + 1}.pth'))
