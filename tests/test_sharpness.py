"""Sharpness of trained weights: closed forms, refusals, a real run.

* Linear least squares through the whole mmengine path (registered model
  and dataset of :mod:`tests.toy`, a checkpoint file, fixed batches): its
  Hessian is ``2 / N [X 1]^T [X 1]``, so the largest eigenvalue and the
  trace are known; at its exact minimum the loss is a quadratic, so its
  epsilon-sharpness is ``lambda_max * rho^2 / 2``.
* Quadratics and a linear function with known epsilon-sharpness.
* Models that change state in ``loss()`` and a model whose loss has no
  second derivative (mmcv's RoIAlign, as in two-stage detectors) are
  refused with a message.
* The demo config trained for an epoch, measured by ``compare(...,
  sharpness=...)`` and by ``tools/analysis/sharpness.py``: the same numbers.
"""
import importlib.util
import json
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import sema_mm  # noqa: F401
from sema_mm.comparison.runner import SHARPNESS_FILE, Settings, compare
from sema_mm.comparison.variants import parse_variants, set_data_root
from sema_mm.studies.sharpness import (
    Objective,
    SharpnessOptions,
    SharpnessUnsupported,
    epsilon_sharpness,
    measure_checkpoint,
)
from tests.toy import ToyRegressionDataset

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DIGITS = osp.join(REPO, 'configs', 'demo', 'resnet_digits_sema.py')


def toy_cfg(model: dict, dataset: dict, batch_size: int = 16) -> Config:
    return Config(dict(
        default_scope='mmengine',
        custom_imports=dict(imports=['tests.toy'],
                            allow_failed_imports=False),
        model=model,
        train_dataloader=dict(
            batch_size=batch_size, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='toy_collate'), dataset=dataset)))


def save_weights(cfg: Config, path: str, state=None) -> str:
    init_default_scope('mmengine')
    model = MODELS.build(cfg.model)
    torch.save(dict(state_dict=state or model.state_dict()), path)
    return path


def test_least_squares_hessian_and_epsilon_sharpness(tmp_path):
    cfg = toy_cfg(dict(type='ToyRegressor'),
                  dict(type='ToyRegressionDataset', num_samples=64))
    data = ToyRegressionDataset(num_samples=64)
    x = torch.cat([data.inputs, torch.ones(64, 1)], 1).double()
    hessian = 2.0 / 64 * x.T @ x
    top = float(torch.linalg.eigvalsh(hessian)[-1])
    trace = float(torch.trace(hessian))
    path = save_weights(cfg, str(tmp_path / 'random.pth'))
    # 4 batches of 16: every sample once, so the mean of the batch losses
    # is the loss over all 64.
    options = SharpnessOptions(batches=4, power_iters=100, tol=1e-8,
                               trace_samples=100, eps=1e-2, ascent_steps=3)
    result = measure_checkpoint(cfg, path, options)
    assert result['images'] == 64 and result['batches'] == 4
    assert result['lambda_max_converged']
    assert result['lambda_max'] == pytest.approx(top, rel=1e-4)
    assert abs(result['trace'] - trace) < 4 * result['trace_stderr']
    assert result['trace_stderr'] < 0.1 * trace
    assert result['eps_sharpness'] > 0
    # Deterministic: the same numbers again (the weights were restored).
    again = measure_checkpoint(cfg, path, options)
    for key in ('loss', 'lambda_max', 'trace', 'eps_sharpness'):
        assert again[key] == result[key]

    # At the exact least-squares solution the loss is w^T H w / 2 around
    # it: the largest increase within radius rho is lambda_max rho^2 / 2.
    solution = torch.linalg.lstsq(x, data.targets.double()[:, None]).solution
    state = {'linear.weight': solution[:-1, 0][None].float(),
             'linear.bias': solution[-1:, 0].float()}
    path = save_weights(cfg, str(tmp_path / 'solution.pth'), state)
    at_min = measure_checkpoint(cfg, path, SharpnessOptions(
        batches=4, power_iters=0, eps=1e-2, ascent_steps=40))
    rho = at_min['radius']
    assert rho == pytest.approx(1e-2 * float(solution.norm()), rel=1e-5)
    assert at_min['eps_sharpness'] == pytest.approx(0.5 * top * rho**2,
                                                    rel=2e-2)


def quadratic(eigenvalues, center, seed=0):
    """``L(w) = (w - c)^T A (w - c) / 2`` with a rotated ``A``."""
    n = len(eigenvalues)
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    a = q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T
    w = center.clone().requires_grad_(True)
    return Objective(lambda i: 0.5 * (w - center) @ a @ (w - center), 1,
                     [w]), w


def test_epsilon_sharpness_of_a_quadratic_and_a_linear_function():
    center = torch.linspace(1.0, 3.0, 12, dtype=torch.float64)
    objective, w = quadratic([8.0, 2.0, 1.0] + [0.1] * 9, center)
    out = epsilon_sharpness(objective, eps=0.01, steps=25, seed=3)
    rho = 0.01 * float(center.norm())
    assert out['radius'] == pytest.approx(rho)
    assert out['value'] == pytest.approx(0.5 * 8.0 * rho**2, rel=1e-6)
    assert out['value'] <= 0.5 * 8.0 * rho**2 * (1 + 1e-9)  # a lower bound
    assert torch.equal(w.detach(), center)  # restored
    # Fewer steps find less (but never more than the maximum).
    short = epsilon_sharpness(objective, eps=0.01, steps=2, seed=3)
    assert 0 < short['value'] < out['value']
    # L(w) = a^T w: the maximum rho |a| is SAM's first step.
    a = torch.tensor([3.0, -4.0], dtype=torch.float64)
    v = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    linear = Objective(lambda i: a @ v, 1, [v])
    out = epsilon_sharpness(linear, eps=0.1, steps=1)
    assert out['value'] == pytest.approx(0.1 * math.sqrt(2) * 5.0)


@pytest.mark.parametrize('model, message', [
    ('ToyMomentumModel', 'momentum teachers (encoder_k)'),
    ('ToyClassifier', 'one loss changed calls'),
])
def test_models_that_change_state_in_loss_are_refused(tmp_path, model,
                                                      message):
    cfg = toy_cfg(dict(type=model), dict(type='ToyDataset', num_samples=16),
                  batch_size=8)
    path = save_weights(cfg, str(tmp_path / 'w.pth'))
    with pytest.raises(SharpnessUnsupported, match='changes its own state '
                       'in loss') as info:
        measure_checkpoint(cfg, path, SharpnessOptions(batches=1))
    assert message in str(info.value)


def test_loss_through_mmcv_roi_align_is_refused(tmp_path):
    """mmcv's RoIAlign (two-stage detectors) is once-differentiable: torch
    would take its second derivative as 0, so the Hessian measures are
    refused with what to do; epsilon-sharpness (first order) works."""
    pytest.importorskip('mmcv.ops')
    cfg = toy_cfg(dict(type='ToyRoIClassifier'),
                  dict(type='ToyDataset', num_samples=16), batch_size=8)
    path = save_weights(cfg, str(tmp_path / 'w.pth'))
    with pytest.raises(SharpnessUnsupported,
                       match='cannot be differentiated twice') as info:
        measure_checkpoint(cfg, path, SharpnessOptions(batches=1))
    assert 'once_differentiable' in str(info.value)
    assert 'measure only epsilon-sharpness' in str(info.value)
    result = measure_checkpoint(cfg, path, SharpnessOptions(
        batches=1, power_iters=0, ascent_steps=2))
    assert result['lambda_max'] is None and result['eps_sharpness'] > 0


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'sharpness_tool', osp.join(REPO, 'tools', 'analysis',
                                   'sharpness.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_demo_runs_measured_by_compare_and_by_the_tool(digits, tmp_path):
    """The demo config, baseline and SEMA trained one epoch each on the
    digits; ``compare(sharpness=...)`` adds the table and keeps each run's
    numbers; the tool measures the same numbers from the work root."""

    def modify(cfg):
        set_data_root(cfg, digits)
        cfg.train_dataloader.batch_size = 16

    root = str(tmp_path / 'work')
    options = SharpnessOptions(batches=1, batch_size=16, power_iters=4,
                               eps=1e-3, ascent_steps=2, trace_samples=2)
    res = compare(dict(digits=DIGITS), parse_variants(['baseline', 'sema']),
                  [0], root, Settings(epochs=1, modify=modify, threads=1),
                  sharpness=options)[0]
    assert sorted(res.sharpness) == ['SEMA', 'baseline']
    measured = {label: runs[0] for label, runs in res.sharpness.items()}
    for m in measured.values():
        assert m['images'] == 16 and m['checkpoint'] == 'epoch_1.pth'
        assert m['lambda_max'] > 0 and m['eps_sharpness'] > 0
        assert m['trace'] is not None
    with open(osp.join(root, 'results.md')) as f:
        text = f.read()
    assert '| variant | runs | train loss (fixed batches) | λ_max (Hessian)' \
        in text
    assert f'| SEMA | 1 | {measured["SEMA"]["loss"]:.4g} | ' \
        f'{measured["SEMA"]["lambda_max"]:.4g} |' in text
    assert 'Paired differences of λ_max, variant - reference' in text
    with open(osp.join(root, 'results.json')) as f:
        stored = json.load(f)[0]['sharpness']
    assert stored['SEMA']['0']['lambda_max'] == measured['SEMA'][
        'lambda_max']
    # Measured once: a second report reads the runs' sharpness.json.
    sema_dir = osp.join(root, 'digits', 'sema', 'seed0')
    with open(osp.join(sema_dir, SHARPNESS_FILE)) as f:
        kept = json.load(f)
    again = compare(dict(digits=DIGITS), parse_variants(['baseline',
                                                         'sema']),
                    [0], root, Settings(epochs=1, modify=modify),
                    train=False, sharpness=options)[0]
    assert again.sharpness['SEMA'][0] == kept['result']

    out = str(tmp_path / 'sharpness.json')
    records = load_tool().main([
        '--work-root', root, '--batches', '1', '--batch-size', '16',
        '--power-iters', '4', '--ascent-steps', '2', '--trace-samples', '2',
        '--out', out
    ])
    by_run = {r['label']: r for r in records}
    assert sorted(by_run) == [osp.join('digits', 'baseline', 'seed0'),
                              osp.join('digits', 'sema', 'seed0')]
    tool_sema = by_run[osp.join('digits', 'sema', 'seed0')]
    # Equal up to the float rounding of the kernels (the same images,
    # start vectors and steps; one torch thread in both).
    for key in ('loss', 'lambda_max', 'eps_sharpness', 'trace'):
        assert tool_sema[key] == pytest.approx(measured['SEMA'][key],
                                               rel=1e-5)
