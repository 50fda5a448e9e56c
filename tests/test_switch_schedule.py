"""When SwitchEMAHook switches: epochs, iterations, in-epoch, begin, end."""
import pytest
import torch

from sema_mm.switching import SwitchSchedule
from tests.toy import iteration_loop
from tests.utils import Probe, make_runner, params, sema_hook

ITERS_PER_EPOCH = 8  # 32 toy samples, batch 4


def switch_iterations(probe: Probe):
    """1-based iterations after which the switch count went up."""
    counts = [0] + probe.switches_after_iter
    return [i for i in range(1, len(counts)) if counts[i] > counts[i - 1]]


def switched_epochs(probe: Probe, runner):
    """Epochs (1-based) at whose end the model was set to the EMA."""
    hook = sema_hook(runner)
    return hook.num_switches, [
        e + 1 for e, (m, ema) in enumerate(
            zip(probe.after_epoch, probe.ema_after_epoch))
        if all(torch.equal(m[k], ema[k]) for k in m)
    ]


def run(tmp_path, hook_cfg, **overrides):
    probe = Probe()
    runner = make_runner(
        tmp_path, hooks=[probe],
        custom_hooks=[dict(type='SwitchEMAHook', momentum=0.2, **hook_cfg)],
        **overrides)
    runner.train()
    return runner, probe


@pytest.mark.parametrize('hook_cfg, epochs', [
    (dict(), [1, 2, 3, 4]),
    (dict(switch_interval=2), [2, 4]),
    (dict(switch_interval=3), [3]),
    (dict(switch_end=2), [1, 2]),
    (dict(begin_epoch=2), [3, 4]),
])
def test_epoch_switching(tmp_path, hook_cfg, epochs):
    runner, probe = run(tmp_path, hook_cfg)
    assert switched_epochs(probe, runner) == (len(epochs), epochs)


def test_begin_epoch_seeds_ema_when_averaging_starts(tmp_path):
    """Before ``begin_epoch`` nothing is averaged; the EMA then starts from
    the weights at the start of that epoch."""
    runner, probe = run(tmp_path, dict(begin_epoch=2))
    ema = sema_hook(runner).ema_model
    assert ema.num_steps == 1 + 2 * ITERS_PER_EPOCH


def test_half_epoch_switching(tmp_path):
    """switches_per_epoch=2 switches mid-epoch and at the epoch end."""
    runner, probe = run(tmp_path, dict(switches_per_epoch=2))
    # Mid-epoch switches after iterations 4, 12, 20, 28; the epoch-end
    # ones (after 8, 16, 24) show up at the next iteration's count.
    assert switch_iterations(probe) == [4, 9, 12, 17, 20, 25, 28]
    assert sema_hook(runner).num_switches == 8
    assert switched_epochs(probe, runner)[1] == [1, 2, 3, 4]


def test_iteration_based_loop(tmp_path):
    """IterBasedTrainLoop with switch_by_epoch=False: every N iterations."""
    runner, probe = run(
        tmp_path, dict(switch_by_epoch=False, switch_interval=5),
        **iteration_loop(max_iters=20, milestone=10,
                         checkpoint_interval=10))
    assert switch_iterations(probe) == [5, 10, 15, 20]
    ema = sema_hook(runner).ema_model.module
    for k, v in params(ema).items():
        assert torch.equal(v, probe.after_iter[-1][k])


def test_iteration_switching_with_switch_end(tmp_path):
    runner, probe = run(
        tmp_path, dict(switch_by_epoch=False, switch_interval=6,
                       switch_end=20))
    assert switch_iterations(probe) == [6, 12, 18]


# ------------------------------------------------ SwitchSchedule, no Runner
def points(schedule: SwitchSchedule, epochs: int, iters: int):
    """(epoch, iteration) from 1 after which ``schedule`` switches, walking
    the hook points of an epoch-based loop."""
    found = []
    for epoch in range(epochs):
        for batch_idx in range(iters):
            it = epoch * iters + batch_idx
            if schedule.due_after_iter(epoch, batch_idx, it):
                found.append((epoch + 1, batch_idx + 1))
        if schedule.due_after_epoch(epoch):
            found.append((epoch + 1, iters))
    return found


def test_schedule_every_epoch_and_every_other():
    s = SwitchSchedule().bind(8, max_epochs=3, max_iters=24)
    assert points(s, 3, 8) == [(1, 8), (2, 8), (3, 8)]
    assert s.iters_per_switch == 8
    s = SwitchSchedule(interval=2).bind(8, max_epochs=4, max_iters=32)
    assert points(s, 4, 8) == [(2, 8), (4, 8)]
    assert s.iters_per_switch == 16


def test_schedule_in_epoch_switches():
    s = SwitchSchedule(per_epoch=2).bind(8, max_epochs=2, max_iters=16)
    assert s.in_epoch_points == {4}
    assert points(s, 2, 8) == [(1, 4), (1, 8), (2, 4), (2, 8)]
    assert s.iters_per_switch == 4
    s = SwitchSchedule(per_epoch=3).bind(10, max_epochs=1, max_iters=10)
    assert sorted(s.in_epoch_points) == [3, 7]


def test_schedule_by_iteration_and_end():
    s = SwitchSchedule(interval=5, by_epoch=False, end=12).bind(
        None, max_epochs=1, max_iters=20)
    due = [i + 1 for i in range(20) if s.due_after_iter(0, i, i)]
    assert due == [5, 10]
    assert not s.due_after_epoch(0)
    assert s.iters_per_switch == 5
    s = SwitchSchedule(end=2).bind(4, max_epochs=3, max_iters=12)
    assert points(s, 3, 4) == [(1, 4), (2, 4)]


@pytest.mark.parametrize('kwargs, bind, message', [
    (dict(interval=0), None, 'switch_interval must be an int >= 1'),
    (dict(per_epoch=2, interval=2), None, 'switches_per_epoch > 1 needs'),
    (dict(per_epoch=2, by_epoch=False), None, 'switches_per_epoch > 1 needs'),
    (dict(end=0), None, 'switch_end must be None or >= 1'),
    (dict(), (None, 1, 10), 'the train loop is iteration-based'),
    (dict(end=5), (4, 3, 12), 'switch_end=5 is beyond the end'),
    (dict(per_epoch=5), (4, 3, 12), 'exceeds the 4 iterations'),
])
def test_schedule_refuses_bad_settings(kwargs, bind, message):
    with pytest.raises(ValueError, match=message):
        schedule = SwitchSchedule(**kwargs)
        if bind is not None:
            schedule.bind(*bind)
