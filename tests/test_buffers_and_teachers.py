"""Buffer policies and models with momentum teachers (MoCo-like)."""
import pytest
import torch

from tests.utils import Probe, make_runner, params, sema_hook

BN = 'backbone.1'


def bn_state(model):
    return {k: v.clone() for k, v in model.state_dict().items()
            if k.startswith(BN + '.running')}


class BufferProbe(Probe):
    """Record the BN buffers right after the switch and the EMA's."""

    def __init__(self, priority='LOWEST'):
        super().__init__(priority)
        self.bn_after_switch, self.ema_bn = [], []

    def after_train_epoch(self, runner):
        super().after_train_epoch(runner)
        self.bn_after_switch.append(bn_state(runner.model))
        self.ema_bn.append(bn_state(sema_hook(runner).ema_model.module))


def test_params_policy_keeps_model_bn_statistics(tmp_path):
    before, after = BufferProbe('HIGHEST'), BufferProbe('LOWEST')
    make_runner(tmp_path, hooks=[before, after]).train()
    for b, a in zip(before.bn_after_switch, after.bn_after_switch):
        for k in b:
            assert torch.equal(a[k], b[k]), k  # the switch left them alone


@pytest.mark.parametrize('buffers', ['params', 'average', 'recompute'])
def test_syncbn_config_in_one_process(tmp_path, buffers):
    """A SyncBN model trains with every buffer policy in one process
    (mmengine reverts SyncBN to BN there; several processes need GPUs)."""
    runner = make_runner(
        tmp_path, model=dict(type='ToyClassifier', sync_bn=True),
        custom_hooks=[dict(type='SwitchEMAHook', momentum=0.2,
                           buffers=buffers)])
    runner.train()
    assert sema_hook(runner).num_switches == 4


def test_average_policy_switches_averaged_bn_statistics(tmp_path):
    before, after = BufferProbe('HIGHEST'), BufferProbe('LOWEST')
    runner = make_runner(
        tmp_path, hooks=[before, after],
        custom_hooks=[dict(type='SwitchEMAHook', momentum=0.2,
                           buffers='average')])
    runner.train()
    assert f'{BN}.running_mean' in sema_hook(runner).averager.pairs.names
    for b, a, ema in zip(before.bn_after_switch, after.bn_after_switch,
                         before.ema_bn):
        for k in b:
            assert torch.equal(a[k], ema[k]), k  # model got the EMA's
            assert not torch.equal(b[k], ema[k]), k  # which was different
    # The integer counter is the model's own, never frozen or averaged.
    sd = runner.model.state_dict()
    assert int(sd[f'{BN}.num_batches_tracked']) == 4 * 8


def test_recompute_policy_recalibrates_bn(tmp_path):
    """After each switch the BN statistics are those of the switched-in
    weights on training batches, and training randomness is unchanged."""
    after = BufferProbe('LOWEST')
    runner = make_runner(
        tmp_path, hooks=[after],
        custom_hooks=[dict(type='SwitchEMAHook', momentum=0.2,
                           buffers='recompute', bn_batches=100)])
    runner.train()
    # Recompute by hand from the final weights: a cumulative average over
    # all training batches (100 > 8 batches, so the whole set).
    model = runner.model
    bn = model.backbone[1]
    data = torch.stack([runner.train_dataloader.dataset[i]['inputs']
                        for i in range(32)])
    with torch.no_grad():
        feats = model.backbone[0](data)
    batch_means = [feats[i:i + 4].mean((0, 2, 3)) for i in range(0, 32, 4)]
    expected = torch.stack(batch_means).mean(0)
    torch.testing.assert_close(after.bn_after_switch[-1][
        f'{BN}.running_mean'], expected, atol=1e-5, rtol=0)
    assert int(bn.num_batches_tracked) > 0


def test_separate_ema_leaves_teacher_and_queue_alone(tmp_path):
    """With a separate EMA (teacher=None), encoder_k (an averaged model
    inside the model) and the queue are excluded automatically: the switch
    leaves them as the model's own update made them, and they are never
    averaged."""
    before, after = Probe('HIGHEST'), Probe('LOWEST')
    runner = make_runner(
        tmp_path, hooks=[before, after],
        model=dict(type='ToyMomentumModel'),
        custom_hooks=[dict(type='SwitchEMAHook', momentum=0.2,
                           buffers='average', teacher=None)])
    runner.train()
    hook = sema_hook(runner)
    assert hook.averager.excluded == ('encoder_k', )
    assert not any(n.startswith('encoder_k') or n.startswith('queue')
                   for n in hook.averager.pairs.names)
    for b, a in zip(before.after_epoch, after.after_epoch):
        for k in b:
            if k.startswith('encoder_k'):
                assert torch.equal(a[k], b[k]), k  # untouched by switch
    assert any(not torch.equal(b['head.weight'], a['head.weight'])
               for b, a in zip(before.after_epoch, after.after_epoch))


@pytest.mark.parametrize('teacher', [None, 'auto'])
def test_teacher_follows_only_its_own_update(tmp_path, teacher):
    """The teacher after training equals the model's own EMA of the online
    backbone, replayed from the online weights at every step (whether the
    hook keeps its own EMA or switches the teacher in)."""
    probe = Probe('LOWEST')
    runner = make_runner(
        tmp_path, hooks=[probe], model=dict(type='ToyMomentumModel'),
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
        custom_hooks=[dict(type='SwitchEMAHook', momentum=0.2,
                           teacher=teacher)])
    runner.train()
    # Replay: the teacher is updated inside loss(), i.e. with the online
    # weights *before* each step: those after the previous iteration (or
    # the initial / switched-in ones at an epoch start).
    init = {k[len('backbone.'):]: v for k, v in probe.init_state.items()
            if k.startswith('backbone.') and 'running' not in k
            and 'num_batches' not in k}
    teacher = {k: v.clone() for k, v in init.items()}
    online_before = [init]
    for epoch in range(2):
        for i in range(8):
            idx = epoch * 8 + i
            if i == 0 and epoch > 0:
                src = probe.after_epoch[epoch - 1]
            elif idx == 0:
                src = None
            else:
                src = probe.after_iter[idx - 1]
            if src is not None:
                online_before.append({
                    k[len('backbone.'):]: v for k, v in src.items()
                    if k.startswith('backbone.')})
    for step, online in enumerate(online_before):
        for k in teacher:
            if step == 0:
                teacher[k] = online[k].clone()
            else:
                teacher[k].lerp_(online[k], 0.1)
    got = {k[len('encoder_k.module.'):]: v
           for k, v in params(runner.model).items()
           if k.startswith('encoder_k.module.')}
    for k in teacher:
        torch.testing.assert_close(got[k], teacher[k], atol=1e-6, rtol=0)


class TeacherProbe(Probe):
    """Record the online backbone, the teacher and the queue at epoch ends."""

    def __init__(self, priority):
        super().__init__(priority)
        self.states = []

    def after_train_epoch(self, runner):
        sd = runner.model.state_dict()
        self.states.append({k: v.clone() for k, v in sd.items()})


def test_model_teacher_is_the_ema(tmp_path):
    """teacher='auto' (default) on a MoCo-like model: no second copy; each
    switch copies the teacher into the online backbone and leaves the
    teacher, the queue and its pointer exactly as they were."""
    before, after = TeacherProbe('HIGHEST'), TeacherProbe('LOWEST')
    runner = make_runner(
        tmp_path, hooks=[before, after], model=dict(type='ToyMomentumModel'),
        custom_hooks=[dict(type='SwitchEMAHook', momentum=0.2)])
    runner.train()
    hook = sema_hook(runner)
    assert hook.averager.teacher_name == 'encoder_k'
    assert hook.ema_model is runner.model.encoder_k  # no separate copy
    assert hook.num_switches == 4
    for b, a in zip(before.states, after.states):
        for k in b:
            if k.startswith(('encoder_k', 'queue', 'head')) or \
                    'running' in k or 'num_batches' in k:
                assert torch.equal(a[k], b[k]), k  # switch left it alone
        for k in ('backbone.0.weight', 'backbone.1.weight', 'backbone.0.bias'):
            assert torch.equal(a[k], b['encoder_k.module.' + k[9:]]), k
            assert not torch.equal(a[k], b[k]), k  # it did change online
    ckpt = torch.load(tmp_path / 'epoch_4.pth')
    assert 'ema_state_dict' not in ckpt


def test_model_teacher_can_be_named_or_refused(tmp_path):
    runner = make_runner(
        tmp_path, model=dict(type='ToyMomentumModel'),
        custom_hooks=[dict(type='SwitchEMAHook', teacher='queue')])
    with pytest.raises(ValueError, match="teacher='queue' is not"):
        runner.train()
    runner = make_runner(
        tmp_path, model=dict(type='ToyMomentumModel'),
        custom_hooks=[dict(type='SwitchEMAHook', buffers='average')])
    with pytest.raises(ValueError, match="buffers='average' needs"):
        runner.train()
