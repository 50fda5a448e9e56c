"""The pull-back guard: warn (with numbers) when the EMA's time constant is
much longer than the switch interval; stay silent for the paper's settings.
"""
import logging

import pytest

from sema_mm.switching.pullback import momentum_for, pullback_weight
from tests.utils import LogCapture, Probe, make_runner


class StopAtFirstIteration(Probe):

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        raise KeyboardInterrupt  # end the run once before_train has run


def guard_messages(tmp_path, num_samples, batch_size, hook_cfg,
                   **overrides):
    loader = dict(
        batch_size=batch_size, num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='toy_collate'),
        dataset=dict(type='ToyDataset', num_samples=num_samples))
    runner = make_runner(
        tmp_path, hooks=[StopAtFirstIteration()], train_dataloader=loader,
        custom_hooks=[dict(type='SwitchEMAHook', **hook_cfg)],
        log_level='INFO', **overrides)
    logs = LogCapture(runner)
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    guard = [r for r in logs.records if 'EMA updates per switch' in
             r.getMessage()]
    assert len(guard) == 1
    return guard[0]


def test_formula():
    assert pullback_weight(lambda k: 0.01, 1, 5) == pytest.approx(0.99**5)
    m = momentum_for(0.5, 5)
    assert (1 - m)**5 == pytest.approx(0.5)


def test_warns_for_short_epochs_and_small_momentum(tmp_path):
    """The toy of the paper's Fig. 3 regime: 5 steps per epoch with
    momentum 0.01 keeps weight 0.951 on the previous switch."""
    rec = guard_messages(tmp_path, 20, 4, dict(momentum=0.01))
    msg = rec.getMessage()
    assert rec.levelno == logging.WARNING
    assert '5 EMA updates per switch' in msg and 'weight 0.951' in msg
    assert 'Use momentum >= 0.129' in msg  # 1 - 0.5 ** (1 / 5)
    assert 'The momentum is not changed' in msg


@pytest.mark.parametrize('num_samples, batch, momentum, weight', [
    (50_000, 128, 0.01, '0.0196'),  # CIFAR-100, alpha 0.99
    (117_266, 16, 1e-3, '0.000653'),  # COCO train2017, alpha 0.999
])
def test_silent_for_paper_settings(tmp_path, num_samples, batch, momentum,
                                   weight):
    rec = guard_messages(tmp_path, num_samples, batch,
                         dict(momentum=momentum))
    assert rec.levelno == logging.INFO
    assert f'weight {weight}' in rec.getMessage()


def test_counts_optimizer_steps_with_accumulation(tmp_path):
    """accumulative_counts=4 makes 4x fewer EMA updates per switch."""
    rec = guard_messages(
        tmp_path, 50_000, 128, dict(momentum=0.01),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1),
                           accumulative_counts=4))
    assert '98 EMA updates per switch' in rec.getMessage()


def test_switch_interval_and_half_epochs(tmp_path):
    rec = guard_messages(tmp_path, 64, 4,
                         dict(momentum=0.2, switch_interval=2))
    assert '32 EMA updates per switch' in rec.getMessage()
    rec = guard_messages(tmp_path, 64, 4,
                         dict(momentum=0.2, switches_per_epoch=2))
    assert '8 EMA updates per switch' in rec.getMessage()


def test_warmup_is_taken_into_account(tmp_path):
    """With a momentum warm-up the first switch keeps less of the start."""
    rec = guard_messages(tmp_path, 20, 4,
                         dict(momentum=0.01, warmup_iters=10))
    msg = rec.getMessage()
    assert 'weight 0.951' in msg  # steady state unchanged
    first = pullback_weight(
        lambda k: 0.01 + 0.99 * 2.718281828459045**(-k / 10), 1, 5)
    assert f'{first:.3g} for the first switch' in msg


def test_threshold_is_configurable(tmp_path):
    rec = guard_messages(tmp_path, 20, 4,
                         dict(momentum=0.01, pullback_threshold=0.99))
    assert rec.levelno == logging.INFO
