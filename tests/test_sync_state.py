"""The EMA's state relative to the model, and weights changed by other code
after a switch: validation and checkpoints still see the right tensors."""
import pytest
import torch
from mmengine.hooks import Hook

from sema_mm.ema import EMAState, ModelSync
from tests.utils import (
    Probe,
    assert_close,
    make_runner,
    params,
    sema_hook,
    unwrap,
)


def test_transitions_and_in_place_changes():
    weights = [torch.zeros(3), torch.ones(2)]
    sync = ModelSync(lambda: weights)
    assert not sync.started and not sync.in_sync
    sync.seeded()
    assert sync.state is EMAState.IN_SYNC and sync.in_sync
    sync.updated()
    assert sync.state is EMAState.DIVERGED and not sync.in_sync
    sync.switched()
    assert sync.in_sync
    weights[1].add_(1)  # e.g. load_state_dict or an optimizer step
    assert sync.state is EMAState.IN_SYNC and not sync.in_sync
    sync.restart()
    assert not sync.started


class EditAfterSwitch(Hook):
    """After the switch (NORMAL), before the checkpoint (VERY_LOW) and the
    validation, change the model's weights as other code might."""
    priority = 'BELOW_NORMAL'

    def __init__(self, how: str) -> None:
        self.how = how
        self.ema = []
        self.edited = []

    def after_train_epoch(self, runner) -> None:
        model = unwrap(runner.model)
        self.ema.append(params(sema_hook(runner).ema_model.module))
        if self.how == 'load_state_dict':
            state = model.state_dict()
            model.load_state_dict(
                {k: v + 1 if v.is_floating_point() else v
                 for k, v in state.items()})
        else:
            for p in model.parameters():
                p.data.add_(1)
        self.edited.append(params(model))


@pytest.mark.parametrize('how', ['load_state_dict', 'data'])
def test_weights_changed_after_switch(tmp_path, how):
    """Validation evaluates the EMA and gives the model its edited weights
    back; the checkpoint's state_dict is the EMA and its ema_state_dict the
    edited model."""
    edit, probe = EditAfterSwitch(how), Probe('LOWEST')
    runner = make_runner(
        tmp_path, hooks=[edit, probe],
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1))
    runner.train()
    assert sema_hook(runner).num_switches == 2
    for epoch in range(2):
        ema, edited = edit.ema[epoch], edit.edited[epoch]
        assert not torch.equal(ema['head.weight'], edited['head.weight'])
        assert_close(probe.seen_in_val[epoch], ema)
        assert_close(probe.seen_after_val[epoch], edited)
        ckpt = torch.load(tmp_path / f'epoch_{epoch + 1}.pth',
                          weights_only=False)
        assert_close({k: ckpt['state_dict'][k] for k in ema}, ema)
        assert_close({k: ckpt['ema_state_dict']['module.' + k]
                      for k in edited}, edited)

