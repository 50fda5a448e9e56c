"""SwitchEMAHook keeps the contract of mmengine's ``EMAHook``.

The cases follow the ones mmengine tests its ``EMAHook`` with (construction,
``before_run``, ``before_train``, the update after an iteration, the swaps
around validation and test, checkpoint save and load, and whole runs with
``load_from``, wrappers, non-strict loading and a late start), each
re-stated where SEMA differs by design (docs/emahook_compat.md): invalid
arguments raise ``ValueError`` instead of ``AssertionError``; the EMA is
seeded from the weights when averaging begins, so its ``steps`` count the
seed; a ``begin_epoch`` equal to ``max_epochs`` is refused; ``strict_load``
defaults to True. Further, ``ema_model.module`` carries the model's
buffers, as mmengine's does, and gives the same outputs as mmengine's
EMAHook for the same training.
"""
import copy
import logging

import pytest
import torch
from mmengine.hooks import EMAHook
from mmengine.model import (
    BaseAveragedModel,
    BaseModel,
    ExponentialMovingAverage,
)
from mmengine.registry import MODELS
from torch import nn

from tests.toy import ToyClassifier, iteration_loop, toy_config
from tests.utils import LogCapture, make_runner, params, sema_hook

M = 0.2


def hook_cfg(**kwargs):
    return [dict(type='SwitchEMAHook', momentum=M, **kwargs)]


@MODELS.register_module()
class ToyClassifierExtra(ToyClassifier):
    """ToyClassifier with one more layer: its checkpoints miss a key."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.extra = nn.Linear(2, 1)


@MODELS.register_module()
class ToyWrapper(BaseModel):
    """A model holding the toy model as ``module`` (not a registered model
    wrapper: the hook averages the whole of it)."""

    def __init__(self, model: dict) -> None:
        super().__init__()
        self.module = MODELS.build(model)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


# ------------------------------------------------------------ construction
def test_init_accepts_emahook_arguments():
    from sema_mm.hooks import SwitchEMAHook
    SwitchEMAHook()
    SwitchEMAHook(begin_iter=1)
    hook = SwitchEMAHook(strict_load=False, ema_type='FusedEMA')
    assert hook.strict_load is False
    assert isinstance(hook, EMAHook)


@pytest.mark.parametrize('kwargs, match', [
    (dict(begin_iter=-1), 'begin_iter and begin_epoch must be >= 0'),
    (dict(begin_epoch=-1), 'begin_iter and begin_epoch must be >= 0'),
    (dict(begin_iter=1, begin_epoch=1), 'at most one of them'),
])
def test_init_refuses_bad_begin_with_value_error(kwargs, match):
    from sema_mm.hooks import SwitchEMAHook
    with pytest.raises(ValueError, match=match):
        SwitchEMAHook(**kwargs)


# ---------------------------------------------------------------- before_*
def test_before_run_builds_averaged_model_of_unwrapped_model(tmp_path):
    runner = make_runner(tmp_path)
    hook = sema_hook(runner)
    hook.before_run(runner)
    assert isinstance(hook.ema_model, ExponentialMovingAverage)
    assert isinstance(hook.ema_model, BaseAveragedModel)
    assert hook.src_model is runner.model


def test_before_train_checks_begin_against_the_schedule(tmp_path):
    """``begin_epoch`` before the last epoch is fine; past it (mmengine) or
    at it (SEMA: averaging would never start) is refused, as is a
    ``begin_iter`` past ``max_iters``."""
    runner = make_runner(tmp_path, custom_hooks=hook_cfg(begin_epoch=3))
    runner.train()  # begins with the last of the 4 epochs
    assert sema_hook(runner).ema_model.num_steps == 1 + 8
    for kwargs, match in ((dict(begin_epoch=5), 'begin_epoch=5 is not'),
                          (dict(begin_epoch=4), 'begin_epoch=4 is not')):
        runner = make_runner(tmp_path / 'x', custom_hooks=hook_cfg(**kwargs))
        with pytest.raises(ValueError, match=match):
            runner.train()
    runner = make_runner(
        tmp_path / 'y', custom_hooks=hook_cfg(switch_by_epoch=False,
                                              begin_iter=9),
        **iteration_loop(8, 4, 4))
    with pytest.raises(ValueError, match='begin_iter=9 is not before'):
        runner.train()


def test_after_train_iter_updates_the_ema(tmp_path):
    """Once averaging has begun the EMA follows the weights: right after
    the seed it equals them; after new weights are averaged in it lies
    strictly between."""
    runner = make_runner(tmp_path)
    hook = sema_hook(runner)
    hook.before_run(runner)
    hook.before_train(runner)
    model, ema = runner.model, hook.ema_model.module
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape))
    hook.before_train_iter(runner, 0)  # averaging begins: the seed
    for p, q in zip(model.parameters(), ema.parameters()):
        torch.testing.assert_close(p, q, atol=0, rtol=0)
    old = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape))
    hook.after_train_iter(runner, 0)
    for o, p, q in zip(old, model.parameters(), ema.parameters()):
        torch.testing.assert_close(q, (1 - M) * o + M * p)
        assert not torch.equal(q, p)


@pytest.mark.parametrize('method', [
    'before_val_epoch', 'after_val_epoch', 'before_test_epoch',
    'after_test_epoch'
])
def test_val_and_test_swap_model_and_ema(tmp_path, method):
    runner = make_runner(tmp_path, train_cfg=dict(
        by_epoch=True, max_epochs=1, val_interval=1))
    runner.train()
    hook = sema_hook(runner)
    with torch.no_grad():
        for p in hook.src_model.parameters():
            p.copy_(torch.randn(p.shape))
    model_before = params(hook.src_model)
    ema_before = params(hook.ema_model.module)
    getattr(hook, method)(runner)
    model_after = params(hook.src_model)
    ema_after = params(hook.ema_model.module)
    for k in model_before:
        assert torch.equal(model_after[k], ema_before[k]), k
        assert torch.equal(ema_after[k], model_before[k]), k


# -------------------------------------------------------------- checkpoints
def test_before_save_checkpoint_swaps_model_and_ema(tmp_path):
    runner = make_runner(tmp_path)
    hook = sema_hook(runner)
    hook.before_run(runner)
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    with torch.no_grad():  # the model moves away from its EMA
        for p in runner.model.parameters():
            p.add_(1.0)
    model_state = copy.deepcopy(runner.model.state_dict())
    checkpoint = dict(state_dict=runner.model.state_dict())
    hook.before_save_checkpoint(runner, checkpoint)
    ema_state = hook.ema_model.state_dict()
    for k, v in model_state.items():
        assert torch.equal(checkpoint['ema_state_dict']['module.' + k], v), k
        assert torch.equal(checkpoint['state_dict'][k],
                           ema_state['module.' + k]), k


def test_after_load_checkpoint_restores_the_ema_on_resume(tmp_path):
    """Resuming swaps ``state_dict`` and ``ema_state_dict`` back: the EMA
    gets the saved EMA, the model its own weights. Without an
    ``ema_state_dict`` the EMA starts again from the resumed weights (with
    a warning), where mmengine copies ``state_dict`` into it."""
    runner = make_runner(tmp_path, train_cfg=dict(
        by_epoch=True, max_epochs=1, val_interval=1),
        custom_hooks=hook_cfg(switch_interval=2))
    runner.train()
    ckpt = torch.load(tmp_path / 'epoch_1.pth', weights_only=False)
    saved_ema = {k: v.clone() for k, v in ckpt['state_dict'].items()}
    saved_model = {k[7:]: v.clone()
                   for k, v in ckpt['ema_state_dict'].items()
                   if k.startswith('module.')}
    resumed = make_runner(tmp_path, resume=True, train_cfg=dict(
        by_epoch=True, max_epochs=2, val_interval=1),
        custom_hooks=hook_cfg(switch_interval=2))
    hook = sema_hook(resumed)
    hook.before_run(resumed)
    resumed._resume = True
    checkpoint = copy.deepcopy(ckpt)
    hook.after_load_checkpoint(resumed, checkpoint)
    ema = hook.ema_model.module.state_dict()
    for name in params(ToyClassifier()):
        assert torch.equal(ema[name], saved_ema[name]), name
        assert torch.equal(checkpoint['state_dict'][name],
                           saved_model[name]), name
    checkpoint = copy.deepcopy(ckpt)
    del checkpoint['ema_state_dict']
    logs = LogCapture(resumed)
    assert not hook.averager.load(checkpoint)
    assert any('no `ema_state_dict`' in m
               for m in logs.messages(logging.WARNING))


# --------------------------------------------------------------- whole runs
def test_with_runner(tmp_path):
    """Train, then test the checkpoint with ``load_from`` (plain, wrapped
    model, without ``ema_state_dict``, other models with
    ``strict_load=False``)."""
    runner = make_runner(tmp_path, train_cfg=dict(
        by_epoch=True, max_epochs=2, val_interval=1))
    runner.train()
    assert isinstance(sema_hook(runner).ema_model, ExponentialMovingAverage)
    ckpt = torch.load(tmp_path / 'epoch_2.pth', weights_only=False)
    assert 'ema_state_dict' in ckpt
    # 2 epochs of 8 updates; SEMA counts the seed too (mmengine: 16).
    assert int(ckpt['ema_state_dict']['steps']) == 1 + 16
    val_acc = runner.message_hub.get_scalar('val/toy/accuracy').current()
    loader = toy_config('.')['val_dataloader']

    def test(path, **overrides):
        return make_runner(
            tmp_path / 'test', load_from=str(path), test_dataloader=loader,
            test_evaluator=dict(type='ToyAccuracy'), test_cfg=dict(),
            **overrides).test()

    assert test(tmp_path / 'epoch_2.pth')['toy/accuracy'] == val_acc
    wrapped = dict(type='ToyWrapper', model=dict(type='ToyClassifier'))
    assert 'toy/accuracy' in test(tmp_path / 'epoch_2.pth', model=wrapped)
    del ckpt['ema_state_dict']
    torch.save(ckpt, tmp_path / 'no_ema.pth')
    assert test(tmp_path / 'no_ema.pth')['toy/accuracy'] == val_acc
    for model in (dict(type='ToyClassifierExtra'),
                  dict(type='ToyClassifier', width=16)):
        metrics = test(tmp_path / 'epoch_2.pth', model=model,
                       custom_hooks=hook_cfg(strict_load=False))
        assert 'toy/accuracy' in metrics


def test_late_start_by_epoch_and_by_iteration(tmp_path):
    """Before averaging begins the checkpoints hold the model's weights in
    both state dicts; ``ema_state_dict`` is always there."""
    runner = make_runner(tmp_path, custom_hooks=hook_cfg(begin_epoch=2))
    runner.train()
    for epoch in (1, 2):
        ckpt = torch.load(tmp_path / f'epoch_{epoch}.pth', weights_only=False)
        for k, v in ckpt['state_dict'].items():
            assert torch.equal(v, ckpt['ema_state_dict']['module.' + k]), k
    ckpt = torch.load(tmp_path / 'epoch_3.pth', weights_only=False)
    assert int(ckpt['ema_state_dict']['steps']) == 1 + 8
    iters = tmp_path / 'iters'
    runner = make_runner(
        iters, custom_hooks=hook_cfg(switch_by_epoch=False,
                                     switch_interval=100, begin_iter=5),
        **iteration_loop(8, 4, 1))
    runner.train()
    ckpt = torch.load(iters / 'iter_4.pth', weights_only=False)
    for k, v in ckpt['state_dict'].items():
        assert torch.equal(v, ckpt['ema_state_dict']['module.' + k]), k
    ckpt = torch.load(iters / 'iter_6.pth', weights_only=False)
    assert int(ckpt['ema_state_dict']['steps']) == 1 + 1  # seed + 1 update
    assert not torch.equal(ckpt['state_dict']['head.weight'],
                           ckpt['ema_state_dict']['module.head.weight'])


# -------------------------------------------------------- strict_load
def _resume_with_extra_ema_key(tmp_path, strict_load):
    make_runner(tmp_path, train_cfg=dict(
        by_epoch=True, max_epochs=1, val_interval=1),
        custom_hooks=hook_cfg(switch_interval=2)).train()
    path = tmp_path / 'epoch_1.pth'
    ckpt = torch.load(path, weights_only=False)
    ckpt['ema_state_dict']['module.extra.weight'] = torch.zeros(1, 2)
    torch.save(ckpt, path)
    runner = make_runner(tmp_path, resume=True, train_cfg=dict(
        by_epoch=True, max_epochs=2, val_interval=1),
        custom_hooks=hook_cfg(switch_interval=2, strict_load=strict_load))
    return runner, ckpt


def test_strict_load_refuses_an_ema_that_does_not_fit(tmp_path):
    runner, _ = _resume_with_extra_ema_key(tmp_path, True)
    with pytest.raises(ValueError, match='set strict_load=False'):
        runner.train()


def test_strict_load_false_loads_the_entries_that_fit(tmp_path):
    runner, ckpt = _resume_with_extra_ema_key(tmp_path, False)
    logs = LogCapture(runner)
    runner.load_or_resume()
    hook = sema_hook(runner)
    ema = hook.ema_model.module.state_dict()
    for k, v in ckpt['state_dict'].items():  # the saved EMA
        assert torch.equal(ema[k], v), k
    assert any('loaded the EMA entries' in m
               for m in logs.messages(logging.WARNING))


def test_strict_load_false_restarts_an_ema_of_another_shape(tmp_path):
    make_runner(tmp_path, train_cfg=dict(
        by_epoch=True, max_epochs=1, val_interval=1)).train()
    runner = make_runner(
        tmp_path, resume=True, model=dict(type='ToyClassifier', width=16),
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
        custom_hooks=hook_cfg(strict_load=False),
        load_from=str(tmp_path / 'epoch_1.pth'))
    hook = sema_hook(runner)
    hook.before_run(runner)
    runner._resume = True
    ckpt = torch.load(tmp_path / 'epoch_1.pth', weights_only=False)
    logs = LogCapture(runner)
    assert not hook.averager.load(ckpt, strict=False)
    assert any('starts again from the resumed weights' in m
               for m in logs.messages(logging.WARNING))


# ------------------------------------------------ buffers of ema_model
@pytest.mark.parametrize('options', [{}, dict(device='cpu', overlap=True)])
def test_ema_module_carries_the_model_buffers(tmp_path, options):
    """BN running statistics and ``num_batches_tracked`` of
    ``ema_model.module`` are the model's (shared, no copy per step); after
    the last switch its eval output is the model's. Also with the EMA's
    updates overlapped in a worker thread (``device='cpu'``,
    ``overlap=True``: on a CPU model the buffers are still shared)."""
    runner = make_runner(tmp_path, custom_hooks=hook_cfg(**options))
    runner.train()
    hook = sema_hook(runner)
    offload = hook.ema_model._offload
    assert (offload is not None) == bool(options)
    if offload is not None:
        assert offload.updates_done == 4 * 8
    model, ema = runner.model, hook.ema_model.module
    bn, ema_bn = model.backbone[1], ema.backbone[1]
    assert int(ema_bn.num_batches_tracked) == 4 * 8
    assert ema_bn.running_mean.data_ptr() == bn.running_mean.data_ptr()
    assert not torch.equal(ema_bn.running_var, torch.ones_like(
        ema_bn.running_var))
    x = torch.randn(5, 3, 8, 8)
    model.eval()
    ema.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            ema(x, mode='tensor'), model(x, mode='tensor'), atol=0, rtol=0)


def test_ema_module_output_equals_mmengine_emahook(tmp_path):
    """The same training with mmengine's EMAHook and with SwitchEMAHook
    without a switch (its EMA seeded after the first step, where mmengine's
    first update copies the weights): in eval mode ``ema_model.module(x)``
    gives the same outputs."""
    def train(sub, hooks):
        runner = make_runner(tmp_path / sub, custom_hooks=hooks)
        runner.train()
        hook = next(h for h in runner.hooks if isinstance(h, EMAHook))
        return runner, hook.ema_model.module

    ref_runner, ref = train('mmengine', [dict(
        type='EMAHook', ema_type='ExponentialMovingAverage', momentum=M)])
    runner, ema = train('sema', hook_cfg(switch_interval=100, begin_iter=1))
    assert sema_hook(runner).num_switches == 0
    for k, v in params(ref_runner.model).items():  # same training
        assert torch.equal(v, params(runner.model)[k]), k
    x = torch.randn(5, 3, 8, 8)
    ref.eval()
    ema.eval()
    with torch.no_grad():
        torch.testing.assert_close(ema(x, mode='tensor'),
                                   ref(x, mode='tensor'),
                                   atol=1e-6, rtol=0)
    assert int(ema.backbone[1].num_batches_tracked) == 32
