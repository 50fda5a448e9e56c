"""SwitchEMAHook in a real mmengine Runner against a plain-PyTorch SEMA.

The reference below is Algorithm 1 of the SEMA paper written out by hand:
the EMA starts as a copy of the initial weights, is updated after every
optimizer step with ``ema = (1 - m) * ema + m * w``, and is copied into the
model at the end of every ``switch_every``-th epoch. It replays exactly the
batches the Runner drew (shuffled sampler) with the same optimizer (momentum
SGD with weight decay) and LR schedule (multi-step, per epoch).
"""
import copy

import pytest
import torch

from tests.toy import ToyClassifier, toy_config
from tests.utils import (
    Probe,
    assert_close,
    assert_equal,
    make_runner,
    params,
    sema_hook,
)

M = 0.2  # momentum of the toy runs (8 updates per epoch: pull-back 0.17)


def reference_sema(init_state, epochs_of_batches, m=M, switch_every=1,
                   accumulate=1):
    """Plain-PyTorch SEMA. Returns, per epoch, the EMA at the epoch end and
    the model's parameters after the (possible) switch."""
    model = ToyClassifier()
    model.load_state_dict(init_state)
    opt = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [2, 3], gamma=0.5)
    ema = {k: v.detach().clone() for k, v in model.named_parameters()}
    history, it = [], 0
    for epoch, batches in enumerate(epochs_of_batches):
        for batch in batches:
            data = model.data_preprocessor(batch, True)
            loss = model(**data, mode='loss')['loss'] / accumulate
            loss.backward()
            it += 1
            if it % accumulate:
                continue
            opt.step()
            opt.zero_grad()
            with torch.no_grad():
                for k, p in model.named_parameters():
                    ema[k].mul_(1 - m).add_(p, alpha=m)
        ema_end = {k: v.clone() for k, v in ema.items()}
        if (epoch + 1) % switch_every == 0:
            with torch.no_grad():
                for k, p in model.named_parameters():
                    p.copy_(ema[k])
        history.append((ema_end, params(model)))
        sched.step()
    return history


def test_follows_algorithm_1(tmp_path):
    """Default options: weights after each epoch match Algorithm 1."""
    probe = Probe()
    runner = make_runner(tmp_path, hooks=[probe])
    runner.train()
    ref = reference_sema(probe.init_state, probe.batches)
    assert len(ref) == 4 and sema_hook(runner).num_switches == 4
    for (ema, switched), model_after, ema_after in zip(
            ref, probe.after_epoch, probe.ema_after_epoch):
        assert_close(model_after, switched)
        assert_close(ema_after, ema)
        assert_close(model_after, ema)  # the switch happened


def test_ema_starts_from_initial_weights(tmp_path):
    """The first update averages the initial weights in (the EMA does not
    start one step late, as mmengine's ExponentialMovingAverage does)."""
    probe = Probe()
    runner = make_runner(
        tmp_path, hooks=[probe],
        train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1))
    runner.train()
    first = probe.after_iter[0]
    ema = sema_hook(runner).ema_model
    init = {k: v for k, v in probe.init_state.items() if k in first}
    # Recompute the EMA after the whole epoch from the per-step weights.
    expected = {k: v.clone() for k, v in init.items()}
    for step in probe.after_iter:
        for k in expected:
            expected[k].mul_(1 - M).add_(step[k], alpha=M)
    assert_close(params(ema.module), expected)
    assert ema.num_steps == 1 + len(probe.after_iter)


def test_validation_sees_ema_and_model_is_restored(tmp_path):
    """With a switch every 2 epochs, validation after epoch 1 evaluates the
    EMA (not yet switched in) and the model gets its own weights back."""
    before, after = Probe('LOW'), Probe('HIGHEST')
    runner = make_runner(
        tmp_path, hooks=[before, after],
        custom_hooks=[dict(type='SwitchEMAHook', momentum=M,
                           switch_interval=2)])
    runner.train()
    ref = reference_sema(before.init_state, before.batches, switch_every=2)
    assert sema_hook(runner).num_switches == 2
    for epoch, (ema, switched) in enumerate(ref):
        assert_close(before.seen_in_val[epoch], ema)  # val sees the EMA
        assert_close(before.seen_after_val[epoch], switched)  # model restored
    # Epoch 1 has no switch: the raw model differs from the EMA there.
    assert not torch.allclose(ref[0][0]['head.weight'],
                              ref[0][1]['head.weight'])


def test_checkpoint_holds_ema_in_state_dict(tmp_path):
    """``state_dict`` is the EMA (deployable), ``ema_state_dict`` the raw
    model; after a switch they are equal."""
    probe = Probe()
    runner = make_runner(
        tmp_path, hooks=[probe],
        custom_hooks=[dict(type='SwitchEMAHook', momentum=M,
                           switch_interval=2)])
    runner.train()
    ref = reference_sema(probe.init_state, probe.batches, switch_every=2)
    for epoch in (1, 2):
        ckpt = torch.load(tmp_path / f'epoch_{epoch}.pth')
        ema, model = ref[epoch - 1]
        sd, ema_sd = ckpt['state_dict'], ckpt['ema_state_dict']
        assert set(ema_sd) == {'steps'} | {'module.' + k for k in sd}
        assert_close({k: sd[k] for k in ema}, ema)
        assert_close({k: ema_sd['module.' + k] for k in model}, model)
        # Buffers are the model's in both.
        assert torch.equal(sd['backbone.1.running_mean'],
                           ema_sd['module.backbone.1.running_mean'])
        assert int(ema_sd['steps']) == 1 + 8 * epoch


def test_test_loop_evaluates_saved_ema(tmp_path):
    """``load_from`` + ``runner.test()`` (the tools/test.py path) reloads a
    checkpoint with weights_only and evaluates the EMA it holds, which is
    what validation reported during training."""
    runner = make_runner(
        tmp_path,
        custom_hooks=[dict(type='SwitchEMAHook', momentum=M,
                           switch_interval=2)])
    runner.train()
    val_acc = runner.message_hub.get_scalar('val/toy/accuracy').data[0][0]
    cfg = toy_config(str(tmp_path))
    tester = make_runner(
        tmp_path / 'test',
        load_from=str(tmp_path / 'epoch_1.pth'),
        custom_hooks=[dict(type='SwitchEMAHook', momentum=M)],
        test_dataloader=cfg['val_dataloader'],
        test_evaluator=cfg['val_evaluator'],
        test_cfg=dict())
    metrics = tester.test()
    assert metrics['toy/accuracy'] == pytest.approx(val_acc)


@pytest.mark.parametrize('crash_after', [1, 2])
def test_resume_is_bit_identical(tmp_path, crash_after):
    """A run that crashes after epoch k and is resumed ends bit-identical to
    an uninterrupted one (weights, EMA, optimizer state)."""

    class Crash(Probe):

        def after_train_epoch(self, runner):
            if runner.epoch + 1 == crash_after:
                raise RuntimeError('crash')

    full = make_runner(tmp_path / 'full')
    full.train()
    crashed = make_runner(tmp_path / 'part', hooks=[Crash('LOWEST')])
    with pytest.raises(RuntimeError, match='crash'):
        crashed.train()
    resumed = make_runner(tmp_path / 'part', resume=True)
    resumed.train()
    assert resumed.iter == full.iter
    assert_equal(params(resumed.model), params(full.model))
    assert_equal(params(sema_hook(resumed).ema_model.module),
                 params(sema_hook(full).ema_model.module))
    assert_equal(resumed.model.state_dict(), full.model.state_dict())
    assert (sema_hook(resumed).ema_model.num_steps ==
            sema_hook(full).ema_model.num_steps)
    m_full = full.optim_wrapper.state_dict()['state']
    m_res = resumed.optim_wrapper.state_dict()['state']
    for k in m_full:
        assert torch.equal(m_full[k]['momentum_buffer'],
                           m_res[k]['momentum_buffer'])


def test_gradient_accumulation_updates_on_optimizer_steps(tmp_path):
    """With accumulative_counts=2 the EMA moves only when the optimizer
    stepped, and the run still follows Algorithm 1."""
    probe = Probe()
    runner = make_runner(
        tmp_path, hooks=[probe],
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9,
                           weight_decay=1e-4),
            accumulative_counts=2))
    runner.train()
    assert sema_hook(runner).ema_model.num_steps == 1 + 4 * 4
    ref = reference_sema(probe.init_state, probe.batches, accumulate=2)
    for (ema, switched), model_after in zip(ref, probe.after_epoch):
        assert_close(model_after, switched, atol=1e-5)


def test_amp_bf16_keeps_ema_in_weight_dtype(tmp_path):
    """AMP (mmengine's AmpOptimWrapper path, bf16 autocast on CPU) works;
    the EMA keeps the dtype of the weights (float32)."""
    probe = Probe()
    runner = make_runner(
        tmp_path, hooks=[probe],
        optim_wrapper=dict(
            type='CPUAmpOptimWrapper',
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9)))
    runner.train()
    hook = sema_hook(runner)
    assert runner.model.train_dtype == torch.bfloat16  # autocast was on
    assert hook.num_switches == 4
    for name, p in hook.ema_model.module.named_parameters():
        assert p.dtype == torch.float32, name
    assert_close(probe.after_epoch[-1], params(hook.ema_model.module))


def test_ema_can_live_on_cpu_device(tmp_path):
    """``device='cpu'`` keeps the EMA on the CPU (here also the model's)."""
    runner = make_runner(
        tmp_path,
        custom_hooks=[dict(type='SwitchEMAHook', momentum=M,
                           device='cpu')])
    runner.train()
    hook = sema_hook(runner)
    assert hook.num_switches == 4
    assert all(p.device.type == 'cpu'
               for p in hook.ema_model.module.parameters())


def test_ema_type_is_pluggable(tmp_path):
    """mmengine's ExponentialMovingAverage works as ema_type (it starts its
    average at the first update: the hook seeds and marks it started)."""
    probe = Probe()
    runner = make_runner(
        tmp_path, hooks=[probe],
        custom_hooks=[dict(type='SwitchEMAHook', momentum=M,
                           ema_type='ExponentialMovingAverage')])
    runner.train()
    ref = reference_sema(probe.init_state, probe.batches)
    for (ema, switched), model_after in zip(ref, probe.after_epoch):
        assert_close(model_after, switched)


def test_copy_of_model_is_never_a_shared_tensor(tmp_path):
    """After a switch the model and the EMA are equal but independent."""
    runner = make_runner(
        tmp_path,
        train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1))
    runner.train()
    ema = sema_hook(runner).ema_model.module
    for (name, p), q in zip(runner.model.named_parameters(),
                            ema.parameters()):
        assert p.data_ptr() != q.data_ptr(), name
    before = copy.deepcopy(params(ema))
    with torch.no_grad():
        for p in runner.model.parameters():
            p.add_(1.0)
    assert_equal(params(ema), before)


def test_ema_starts_from_loaded_weights(tmp_path):
    """With ``load_from`` the EMA starts from the loaded weights (loaded
    after the EMA copy was built), not from the random initialisation."""
    one_epoch = dict(train_cfg=dict(by_epoch=True, max_epochs=1,
                                    val_interval=1))
    make_runner(tmp_path / 'a', **one_epoch).train()
    ckpt = str(tmp_path / 'a' / 'epoch_1.pth')
    probe = Probe()
    runner = make_runner(tmp_path / 'b', hooks=[probe], load_from=ckpt,
                         randomness=dict(seed=1, deterministic=True),
                         **one_epoch)
    runner.train()
    loaded = torch.load(ckpt)['state_dict']
    assert_equal({k: probe.init_state[k] for k in loaded}, loaded)
    ref = reference_sema(probe.init_state, probe.batches)
    assert_close(probe.ema_after_epoch[0], ref[0][0])
