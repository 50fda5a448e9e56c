"""FusedEMA: the same numbers as mmengine's ExponentialMovingAverage; the
finite check it shares with SwitchEMAHook."""
import math

import pytest
import torch
from mmengine.model import ExponentialMovingAverage
from torch import nn

from sema_mm.ema import FusedEMA
from sema_mm.ema.fused_ema import select_averaged_names
from sema_mm.ema.tensor_pairs import all_finite


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4),
                         nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g))
        model[1].running_mean.add_(1.0)
        model[1].num_batches_tracked.add_(1)


@pytest.mark.parametrize('update_buffers', [False, True])
def test_matches_mmengine_ema(update_buffers):
    model = make_model()
    ours = FusedEMA(model, momentum=0.1, update_buffers=update_buffers)
    theirs = ExponentialMovingAverage(model, momentum=0.1,
                                      update_buffers=update_buffers)
    for step in range(5):
        perturb(model, step)
        ours.update_parameters(model)
        theirs.update_parameters(model)
    for (k, a), b in zip(ours.module.named_parameters(),
                         theirs.module.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=k)
    if update_buffers:
        torch.testing.assert_close(ours.module[1].running_mean,
                                   theirs.module[1].running_mean)
    assert int(ours.state_dict()['steps']) == int(theirs.steps) == 5


def test_averaged_names_skip_integer_and_other_buffers():
    model = make_model()
    model.register_buffer('queue', torch.zeros(3))
    assert select_averaged_names(model, False) == [
        '0.weight', '0.bias', '1.weight', '1.bias', '3.weight', '3.bias']
    names = select_averaged_names(model, True, exclude=['3'])
    assert '1.running_mean' in names and '1.running_var' in names
    assert '1.num_batches_tracked' not in names and 'queue' not in names
    assert '3.weight' not in names


def test_interval_compensates_momentum():
    """interval=n updates every n-th call with 1 - (1 - m) ** n."""
    model = make_model()
    ema = FusedEMA(model, momentum=0.1, interval=2)
    ema.seed(model)
    start = ema.module[3].weight.detach().clone()
    perturb(model, 0)
    ema.update_parameters(model)  # steps 1: skipped
    torch.testing.assert_close(ema.module[3].weight, start)
    ema.update_parameters(model)  # steps 2: one update worth two
    w = 1 - 0.9**2
    torch.testing.assert_close(ema.module[3].weight,
                               (1 - w) * start + w * model[3].weight)


def test_warmup_momentum():
    ema = FusedEMA(make_model(), momentum=0.01, warmup_iters=100)
    assert ema.momentum_at(1) == pytest.approx(0.01 + 0.99 * math.exp(-0.01))
    assert ema.momentum_at(10_000) == pytest.approx(0.01)
    assert FusedEMA(make_model(), momentum=0.01).momentum_at(1) == 0.01


def test_steps_round_trip_through_state_dict():
    model = make_model()
    ema = FusedEMA(model, momentum=0.1)
    for _ in range(3):
        ema.update_parameters(model)
    other = FusedEMA(model, momentum=0.1)
    other.load_state_dict(ema.state_dict())
    assert other.num_steps == 3




@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_all_finite(dtype):
    """NaN and infinities anywhere are found; large finite values whose
    squares overflow (the fast 2-norm path) are still finite."""
    tensors = [torch.zeros(3, dtype=dtype), torch.ones(2, 4, dtype=dtype)]
    assert all_finite(tensors)
    assert all_finite([])
    big = 1e30 if dtype == torch.float32 else 6e4
    tensors[1].fill_(big)
    assert not torch.stack(torch._foreach_norm(tensors, 2)).isfinite().all()
    assert all_finite(tensors)
    for bad in (float('nan'), float('inf'), -float('inf')):
        tensors[1][1, 2] = bad
        assert not all_finite(tensors)
        assert not all_finite(tensors + [torch.ones(2, dtype=torch.bfloat16)])
        tensors[1][1, 2] = 0.
    assert all_finite(tensors + [torch.ones(2, dtype=torch.bfloat16)])
