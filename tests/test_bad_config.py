"""Bad input fails before the first training iteration with a message that
says what to change, and nothing already written is lost."""
import logging
import os

import pytest
import torch

from tests.utils import LogCapture, Probe, make_runner, sema_hook


def hook(**kwargs):
    return [dict(type='SwitchEMAHook', **kwargs)]


@pytest.mark.parametrize('kwargs, match', [
    (dict(momentum=0), r'momentum must lie in \(0, 1\)'),
    (dict(momentum=1.0), r'momentum must lie in \(0, 1\)'),
    (dict(momentum=-0.1), r'momentum must lie in \(0, 1\)'),
    (dict(momentum=0.999), r'momentum=0\.001 for alpha=0\.999'),
    (dict(momentum=0.9999), r'momentum=0\.0001 for alpha=0\.9999'),
    (dict(switch_interval=0), r'switch_interval must be an int >= 1'),
    (dict(switches_per_epoch=0), r'switches_per_epoch must be an int >= 1'),
    (dict(interval=0), r'interval must be an int >= 1'),
    (dict(switches_per_epoch=2, switch_interval=2),
     r'switches_per_epoch > 1 needs'),
    (dict(switch_end=0), r'switch_end must be None or >= 1'),
    (dict(buffers='all'), r'buffers must be one of'),
    (dict(nonfinite_check='grad'), r'nonfinite_check must be one of'),
    (dict(begin_iter=2, begin_epoch=1), r'at most one of them'),
    (dict(update_buffers=True), r"use buffers='average'"),
])
def test_bad_arguments_fail_at_build(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_runner(tmp_path, custom_hooks=hook(**kwargs))


@pytest.mark.parametrize('kwargs, train_cfg, match', [
    (dict(begin_epoch=4), None, r'begin_epoch=4 is not before the end'),
    (dict(begin_iter=32), None, r'begin_iter=32 is not before the end'),
    (dict(switch_end=5), None, r'switch_end=5 is beyond the end'),
    (dict(switch_by_epoch=False, switch_end=33), None,
     r'switch_end=33 is beyond the end of training \(32 iterations\)'),
    (dict(switches_per_epoch=9), None, r'exceeds the 8 iterations'),
    (dict(), dict(type='IterBasedTrainLoop', max_iters=8),
     r'Set switch_by_epoch=False'),
    (dict(ema_type='NoSuchEMA'), None, r"unknown ema_type 'NoSuchEMA'"),
    (dict(ema_type='ToyClassifier'), None, r"unknown ema_type"),
    (dict(ema_type='ExponentialMovingAverage', warmup_iters=10), None,
     r'does not accept the arguments'),
])
def test_bad_schedule_fails_before_first_iteration(tmp_path, kwargs,
                                                   train_cfg, match):
    probe = Probe()
    overrides = {} if train_cfg is None else dict(train_cfg=train_cfg)
    if train_cfg is not None:
        overrides['train_dataloader'] = dict(
            batch_size=4, num_workers=0,
            sampler=dict(type='InfiniteSampler'),
            collate_fn=dict(type='toy_collate'),
            dataset=dict(type='ToyDataset'))
        overrides['param_scheduler'] = None
    runner = make_runner(tmp_path, hooks=[probe], custom_hooks=hook(
        momentum=0.2, **kwargs), **overrides)
    with pytest.raises(ValueError, match=match):
        runner.train()
    assert probe.batches == [] or probe.batches == [[]]
    assert not any(f.endswith('.pth') for f in os.listdir(tmp_path))


def test_switch_interval_longer_than_training_warns(tmp_path):
    runner = make_runner(tmp_path, custom_hooks=hook(momentum=0.2,
                                                     switch_interval=5))
    logs = LogCapture(runner)
    runner.train()
    assert any('switch_interval=5 epochs is longer than training' in m
               for m in logs.messages(logging.WARNING))
    assert sema_hook(runner).num_switches == 0


@pytest.mark.parametrize('other', [
    dict(type='EMAHook'),
    dict(type='EMAHook', ema_type='ExponentialMovingAverage',
         momentum=1e-4),
])
def test_two_ema_hooks_are_refused(tmp_path, other):
    runner = make_runner(
        tmp_path, custom_hooks=hook(momentum=0.2) + [other])
    with pytest.raises(ValueError, match='Keep exactly one EMA-type hook'):
        runner.train()


def test_resume_with_mismatched_ema_fails_clearly(tmp_path):
    """A checkpoint whose EMA does not fit the model is refused before any
    training, and the checkpoints already written are untouched."""
    make_runner(tmp_path, train_cfg=dict(by_epoch=True, max_epochs=2,
                                         val_interval=1)).train()
    ckpt = tmp_path / 'epoch_2.pth'
    before = ckpt.read_bytes()
    probe = Probe()
    runner = make_runner(tmp_path, hooks=[probe], resume=True,
                         model=dict(type='ToyClassifier', width=16))
    with pytest.raises(ValueError, match='does not match the model'):
        runner.train()
    assert probe.batches == []
    assert ckpt.read_bytes() == before


def test_nonfinite_loss_is_not_averaged(tmp_path):
    """A NaN loss (the step then makes the weights NaN) is skipped with a
    warning; the EMA stays finite and the switch restores the model."""
    runner = make_runner(
        tmp_path, model=dict(type='ToyClassifier', nan_loss_at=5),
        train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1))
    logs = LogCapture(runner)
    runner.train()
    hook = sema_hook(runner)
    warnings = logs.messages(logging.WARNING)
    assert any('non-finite weights at iteration 5' in m for m in warnings)
    assert hook.nonfinite.skipped >= 1
    for p in hook.ema_model.module.parameters():
        assert torch.isfinite(p).all()
    assert hook.num_switches == 1  # the finite EMA replaced the NaN model
    for p in runner.model.parameters():
        assert torch.isfinite(p).all()


class PoisonWeights(Probe):
    """Write a NaN into the model after the optimizer step of iteration 3
    (before SwitchEMAHook's update), with a finite logged loss."""

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter == 2:
            with torch.no_grad():
                runner.model.head.bias[0] = float('nan')


def test_nonfinite_weights_check(tmp_path):
    """nonfinite_check='weights' catches NaN weights the loss did not show;
    the update is skipped and the EMA stays finite."""
    runner = make_runner(
        tmp_path, hooks=[PoisonWeights('ABOVE_NORMAL')],
        custom_hooks=hook(momentum=0.2, nonfinite_check='weights'),
        train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1))
    logs = LogCapture(runner)
    runner.train()
    assert any('non-finite weights at iteration 3' in m
               for m in logs.messages(logging.WARNING))
    assert all(torch.isfinite(p).all()
               for p in sema_hook(runner).ema_model.module.parameters())


def test_nonfinite_ema_is_never_switched_in(tmp_path):
    """Without a check the NaN enters the EMA; the switch then refuses it."""
    runner = make_runner(
        tmp_path, hooks=[PoisonWeights('ABOVE_NORMAL')],
        custom_hooks=hook(momentum=0.2, nonfinite_check=None),
        train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1))
    logs = LogCapture(runner)
    runner.train()
    assert sema_hook(runner).num_switches == 0
    assert any('the EMA is not finite at the end of epoch 1' in m
               for m in logs.messages(logging.WARNING))


def test_fsdp_on_cpu_needs_torch_2_1():
    """FSDP of torch 2.0 computes on CUDA only: on CPU processes the tools
    refuse ``FSDPStrategy`` with a message before any process group or
    model is built; from torch 2.1 they fill in the CPU wrapper settings."""
    from mmengine.utils import digit_version

    from sema_mm.cli.launch import cpu_strategy_cfg
    strategy = dict(type='FSDPStrategy', state_dict_cfg='full')
    if digit_version(torch.__version__) < digit_version('2.1.0'):
        with pytest.raises(ValueError, match='needs torch >= 2.1'):
            cpu_strategy_cfg(strategy)
    else:
        cfg = cpu_strategy_cfg(strategy)
        assert cfg.model_wrapper.device_id == 'cpu'
        assert cfg.state_dict_cfg.state_dict_config.offload_to_cpu is False


def test_fsdp2_strategy_refuses_what_it_cannot_do():
    """``FSDP2Strategy``: an unknown ``state_dict_cfg`` is refused; on torch
    without ``fully_shard`` (< 2.6) the strategy itself, with a message."""
    from mmengine.utils import digit_version

    from sema_mm import FSDP2Strategy
    with pytest.raises(ValueError, match="state_dict_cfg must be 'local'"):
        FSDP2Strategy(state_dict_cfg='sharded')
    if digit_version(torch.__version__) < digit_version('2.6.0'):
        with pytest.raises(ImportError, match='needs torch >= 2.6'):
            FSDP2Strategy()
    else:
        assert FSDP2Strategy(state_dict_cfg='full').state_dict_cfg == 'full'
