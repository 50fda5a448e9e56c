"""The overlapped host-held EMA (sema_mm.ema.host_offload) on the CPU.

On a CUDA machine ``FusedEMA(device='cpu')`` of a GPU model overlaps its
updates with training; ``overlap=True`` runs the same worker thread, the
same hand-over, the same optimizer step pre-hook and the same joins with
the CPU as the model's device. Here it must give the synchronous update's
numbers bit for bit: with the worker copying the weights while the next
forward pass updates the BatchNorm statistics and the next optimizer step
waits for the copy, in plain loops and in real Runners (switches,
validation, checkpoints, resuming). tests/test_gpu.py has the CUDA side.
"""
import threading

import pytest
import torch
from torch import nn

from sema_mm.ema import FusedEMA
from sema_mm.ema.host_offload import THREAD_NAME, HostOffload
from sema_mm.ema.tensor_pairs import TensorPairs
from tests.test_switch_ema_hook import M
from tests.utils import Probe, make_runner, params, sema_hook


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, 1024), nn.BatchNorm1d(1024),
                         nn.ReLU(), nn.Linear(1024, 512))


def ema_state(ema: FusedEMA) -> dict:
    """The averaged model's tensors, through ``FusedEMA.state_dict()``
    (which joins the worker first)."""
    return {k: v.clone() for k, v in ema.state_dict().items()}


def assert_equal_states(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def worker_threads() -> list:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


@pytest.mark.parametrize('options', [
    dict(update_buffers=True),
    dict(update_buffers=True, interval=3, warmup_iters=4),
    dict(),
], ids=['buffers', 'interval-warmup', 'params'])
def test_overlapped_equals_synchronous(options):
    """One model, two EMAs of it updated after every optimizer step: the
    overlapped one (its worker copies the weights while the next forward
    changes the BatchNorm statistics and the next step waits for it) ends
    bit-identical to the synchronous one, at every join."""
    model = make_model()
    sync = FusedEMA(model, momentum=0.1, device='cpu', overlap=False,
                    **options)
    overlapped = FusedEMA(model, momentum=0.1, device='cpu', overlap=True,
                          host_threads=1, **options)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    for step in range(24):
        x = torch.randn(32, 256, generator=g)
        model(x).square().mean().backward()
        opt.step()
        opt.zero_grad()
        sync.update_parameters(model)
        overlapped.update_parameters(model)
        if step == 3:
            assert len(worker_threads()) >= 1  # the worker is running
        if step % 8 == 7:  # state_dict() joins the worker first
            assert_equal_states(ema_state(overlapped), ema_state(sync))
    # Reading the averaged model directly waits for the pending update too.
    assert torch.equal(overlapped.module[3].weight, sync.module[3].weight)
    assert_equal_states(ema_state(overlapped), ema_state(sync))
    assert overlapped.state_dict()['steps'] == sync.state_dict()['steps']
    lerps = (24 - 1) // options.get('interval', 1)
    assert overlapped._offload.updates_done == lerps
    assert sync._offload is None
    # The EMA moved away from the model, so equality is not trivial.
    assert not torch.equal(overlapped.module[0].weight, model[0].weight)
    thread = overlapped._offload._thread
    overlapped.close()
    assert not thread.is_alive()


def test_worker_error_is_raised_in_the_main_thread():
    """An update that fails in the worker fails the next join with the
    worker's error as its cause."""
    model, ema = nn.Linear(4, 1), nn.Linear(4, 1)
    offload = HostOffload(TensorPairs(ema, model, ['weight']), [], threads=1)
    offload.lerp_(None)  # not a weight: the worker's lerp_ raises
    with pytest.raises(RuntimeError, match='worker thread') as info:
        offload.join()
    assert info.value.__cause__ is not None
    offload.join()  # reported once
    offload.close()


def test_options_are_checked():
    model = make_model()
    with pytest.raises(ValueError, match='host_threads'):
        FusedEMA(model, device='cpu', host_threads=0)
    # On a CPU-only model the average is on the host anyway: allowed, and
    # off by default (no worker, no staging).
    assert FusedEMA(model, overlap=True)._offload is None  # built lazily
    ema = FusedEMA(model, device='cpu')
    ema.pairs_for(model)
    assert ema._offload is None


@pytest.mark.parametrize('buffers', ['average', 'params'])
def test_runner_overlapped_equals_synchronous(tmp_path, buffers):
    """SwitchEMAHook(device='cpu', overlap=True) in a real Runner with
    validation every epoch and checkpoints: the weights after every
    iteration and switch, the EMA after every epoch, what validation saw
    and every checkpoint equal the synchronous run's bit for bit; after
    training the worker is stopped."""
    runs = {}
    for overlap in (False, True):
        probe = Probe()
        runner = make_runner(
            tmp_path / str(overlap), hooks=[probe],
            custom_hooks=[dict(type='SwitchEMAHook', momentum=M,
                               buffers=buffers, device='cpu',
                               overlap=overlap, host_threads=1)])
        runner.train()
        hook = sema_hook(runner)
        assert hook.num_switches == 4
        runs[overlap] = probe, hook
    (p_sync, h_sync), (p_over, h_over) = runs[False], runs[True]
    assert h_over.ema_model._offload.updates_done == 32
    assert h_over.ema_model._offload._thread is None  # stopped
    for name in ('after_iter', 'after_epoch', 'ema_after_epoch',
                 'seen_in_val', 'seen_after_val'):
        a, b = getattr(p_over, name), getattr(p_sync, name)
        assert len(a) == len(b) > 0, name
        for x, y in zip(a, b):
            assert_equal_states(x, y)
    assert_equal_states(ema_state(h_over.ema_model),
                        ema_state(h_sync.ema_model))
    for epoch in (1, 4):
        a = torch.load(tmp_path / 'True' / f'epoch_{epoch}.pth',
                       weights_only=False)
        b = torch.load(tmp_path / 'False' / f'epoch_{epoch}.pth',
                       weights_only=False)
        for key in ('state_dict', 'ema_state_dict'):
            assert_equal_states(a[key], b[key])


def test_runner_resume_with_overlap(tmp_path):
    """Resuming an overlapped run from its epoch-2 checkpoint ends with the
    uninterrupted run's weights and EMA."""
    hook = dict(type='SwitchEMAHook', momentum=M, buffers='average',
                device='cpu', overlap=True, host_threads=1,
                switch_interval=3)  # the checkpoint's EMA != the model
    full = make_runner(tmp_path / 'full', custom_hooks=[dict(hook)])
    full.train()
    resumed = make_runner(tmp_path / 'resumed', custom_hooks=[dict(hook)],
                          resume=True,
                          load_from=str(tmp_path / 'full' / 'epoch_2.pth'))
    resumed.train()
    assert_equal_states(params(resumed.model), params(full.model))
    ema_full = sema_hook(full).ema_model
    averaged = ['module.' + n for n in ema_full.averaged_names]
    assert any('running_mean' in n for n in averaged)
    a = ema_state(sema_hook(resumed).ema_model)
    b = ema_state(ema_full)
    assert_equal_states({n: a[n] for n in averaged},
                        {n: b[n] for n in averaged})
    assert sema_hook(resumed).num_switches == sema_hook(full).num_switches
