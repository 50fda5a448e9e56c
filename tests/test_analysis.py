"""Calibration and decision-boundary metrics, loss landscapes, and the
analysis tools on tiny inputs with known answers."""
import importlib.util
import json
import math
import os.path as osp
import uuid

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from torch import nn

from sema_mm.studies.decision import (
    accuracy,
    band_fraction,
    boundary_width,
    contour_length,
    expected_calibration_error,
    grid,
)
from sema_mm.studies.landscape import (
    filter_normalize,
    interpolate,
    load_weights,
    make_batch_loss,
    move,
    pca_directions,
    project,
    random_direction,
    scan,
)
from tests.toy import toy_config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(name: str):
    """A script of tools/analysis as a module."""
    path = osp.join(REPO, 'tools', 'analysis', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------ calibration
def test_ece_of_known_cases():
    labels = np.array([1] * 10)
    # Confidence 0.9 everywhere and 9 of 10 right: perfectly calibrated.
    probs = np.full(10, 0.9)
    probs[0] = 0.1  # predicts class 0 with confidence 0.9: wrong
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0)
    # Confidence 1 and half right: ECE 0.5.
    two = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert expected_calibration_error(two, np.array([1, 1])) == \
        pytest.approx(0.5)
    # Two bins by hand (10 bins): 0.62 (bin 6, right) and 0.95, 0.85
    # (bins 9 and 8, one right, one wrong).
    probs = np.array([[0.38, 0.62], [0.05, 0.95], [0.85, 0.15]])
    labels = np.array([1, 1, 1])
    expected = (abs(1 - 0.62) + abs(1 - 0.95) + abs(0 - 0.85)) / 3
    assert expected_calibration_error(probs, labels) == \
        pytest.approx(expected)
    # With one bin: |accuracy - mean confidence|.
    assert expected_calibration_error(probs, labels, n_bins=1) == \
        pytest.approx(abs(2 / 3 - (0.62 + 0.95 + 0.85) / 3))
    assert accuracy(probs, labels) == pytest.approx(200 / 3)


def test_boundary_width_of_a_logistic_ramp():
    xs = np.linspace(-2, 2, 801)
    ys = np.linspace(-1, 1, 101)
    gx, _ = np.meshgrid(xs, ys)
    for k in (2.0, 5.0):
        p1 = 1 / (1 + np.exp(-k * gx))
        width = 2 * math.log(0.75 / 0.25) / k  # |x| <= logit(0.75) / k
        assert boundary_width(xs, ys, p1, 0.25) == pytest.approx(
            width, abs=2 * (xs[1] - xs[0]))
        assert band_fraction(p1, 0.25) == pytest.approx(width / 4,
                                                        abs=0.01)
    # No boundary inside the grid.
    assert math.isnan(boundary_width(xs, ys, np.ones_like(gx)))
    with pytest.raises(ValueError):
        band_fraction(np.ones(3), 0.7)


def test_contour_length_of_a_circle():
    xs = ys = np.linspace(-2, 2, 401)
    gx, gy = np.meshgrid(xs, ys)
    r = np.hypot(gx, gy)
    assert contour_length(xs, ys, r, 1.0) == pytest.approx(2 * math.pi,
                                                           rel=1e-3)
    gxs, gys, pts = grid(np.array([[0, 0], [1, 2]]), steps=5, margin=0.5)
    assert gxs[0] == -0.5 and gxs[-1] == 1.5 and gys[-1] == 2.5
    assert pts.shape == (25, 2)


def test_toy_decision_runs(tmp_path):
    tool = load_tool('toy_decision')
    data = tool.make_data('moons', 0)
    assert len(data[0]) == 50 and int(data[1].sum()) == 25
    assert len(data[2]) == 950
    # SEMA's evaluated model is the EMA after the last switch.
    model = tool.train('SEMA', data, 0, epochs=2, momentum=0.2)
    baseline = tool.train('baseline', data, 0, epochs=2, momentum=0.2)
    assert not torch.equal(model[0].weight, baseline[0].weight)
    results = tool.main([
        '--datasets', 'circles', '--seeds', '2', '--epochs', '40', '--out',
        str(tmp_path)
    ])
    runs = results['circles']['SEMA']
    assert len(runs) == 2
    for run in runs:
        assert 0 <= run['accuracy'] <= 100 and 0 <= run['ece'] <= 100
        assert run['width'] > 0
    assert (tmp_path / 'toy_decision_circles.png').stat().st_size > 10000
    assert '| circles | SEMA | 2 |' in (tmp_path /
                                       'toy_decision.md').read_text()


# --------------------------------------------------------- loss landscape
def test_filter_normalisation():
    torch.manual_seed(0)
    w = torch.randn(4, 3, 2, 2)
    d = filter_normalize(torch.randn(4, 3, 2, 2), w)
    assert torch.allclose(d.flatten(1).norm(dim=1), w.flatten(1).norm(dim=1))
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    state = model.state_dict()
    params = [n for n, _ in model.named_parameters()]
    d = random_direction(state, params, torch.Generator().manual_seed(1))
    assert set(d) == {k for k, v in state.items() if v.is_floating_point()}
    assert torch.allclose(d['0.weight'].flatten(1).norm(dim=1),
                          state['0.weight'].flatten(1).norm(dim=1))
    for name in ('0.bias', '1.weight', '1.bias', '1.running_mean'):
        assert not d[name].any()  # 1-D parameters and buffers: no move
    again = random_direction(state, params, torch.Generator().manual_seed(1))
    assert torch.equal(again['0.weight'], d['0.weight'])


def test_interpolation_ends_and_projection():
    a = nn.Linear(3, 2).state_dict()
    b = {k: v + 1 for k, v in a.items()}
    assert all(torch.equal(interpolate(a, b, 0)[k], a[k]) for k in a)
    assert all(torch.equal(interpolate(a, b, 1)[k], b[k]) for k in a)
    mid = interpolate(a, b, 0.25)
    assert torch.allclose(mid['weight'], a['weight'] + 0.25)
    params = list(a)
    g = torch.Generator().manual_seed(0)
    d1 = random_direction(a, params, g)
    d2 = random_direction(a, params, g)
    points = [move(a, [d1, d2], [x, y]) for x, y in ((0.5, -1), (2, 0.25))]
    coords, residual = project(points, a, d1, d2)
    assert coords[0] == pytest.approx((0.5, -1), abs=1e-6)
    assert coords[1] == pytest.approx((2, 0.25), abs=1e-6)
    assert residual == pytest.approx([0, 0], abs=1e-6)
    # A straight trajectory: one principal direction explains it all.
    line = [move(a, [d1], [t]) for t in (0.0, 1.0, 2.0, 3.0)]
    p1, _, var = pca_directions(line, a, params)
    assert var[0] == pytest.approx(1.0)
    coords, residual = project(line, a, p1, d2)
    assert max(residual) < 1e-6


@pytest.fixture(scope='module')
def toy_checkpoints(tmp_path_factory):
    """A 2-epoch toy SEMA run with a checkpoint per epoch, and its config
    as a file."""
    root = tmp_path_factory.mktemp('landscape')
    cfg = toy_config(str(root / 'work'), log_level='WARNING')
    cfg['train_cfg'] = dict(by_epoch=True, max_epochs=2, val_interval=1)
    cfg['custom_imports'] = dict(imports=['tests.toy', 'sema_mm'],
                                 allow_failed_imports=False)
    config = str(root / 'toy.py')
    Config(dict(cfg)).dump(config)
    cfg['experiment_name'] = f'landscape_{uuid.uuid4().hex[:8]}'
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    work = root / 'work'
    return dict(config=config, ckpts=[str(work / f'epoch_{e}.pth')
                                      for e in (1, 2)])


def test_landscape_ends_equal_checkpoint_losses(toy_checkpoints, tmp_path):
    tool = load_tool('loss_landscape')
    model, batches = tool.build_model_and_batches(toy_checkpoints['config'],
                                                  'val', 3)
    assert len(batches) == 3
    evaluate = make_batch_loss(model, batches)
    states = [tool.load_state(p) for p in toy_checkpoints['ckpts']]
    direct = []
    for state in states:
        model.load_state_dict(state)
        direct.append(evaluate()['loss'])
    assert direct[0] != direct[1]
    ends = scan(model, evaluate,
                [interpolate(states[0], states[1], x) for x in (0.0, 1.0)])
    assert [r['loss'] for r in ends] == pytest.approx(direct, rel=1e-6)

    result = tool.main([
        toy_checkpoints['config'], '--mode', 'interp', '--checkpoints',
        *toy_checkpoints['ckpts'], '--range', '0', '1', '--points', '3',
        '--batches', '3', '--out', str(tmp_path)
    ])
    losses = [r['loss'] for r in next(iter(result['curves'].values()))]
    assert result['x'] == [0.0, 0.5, 1.0]
    assert [losses[0], losses[-1]] == pytest.approx(direct, rel=1e-6)
    assert (tmp_path / 'landscape_interp.png').stat().st_size > 5000
    with open(tmp_path / 'landscape_interp.json') as f:
        assert json.load(f)['mode'] == 'interp'


def test_landscape_1d_and_2d(toy_checkpoints, tmp_path):
    tool = load_tool('loss_landscape')
    ckpts = toy_checkpoints['ckpts']
    one = tool.main([
        toy_checkpoints['config'], '--mode', '1d', '--checkpoints', *ckpts,
        '--points', '3', '--batches', '2', '--out', str(tmp_path)
    ])
    assert sorted(one['curves']) == ['epoch_1', 'epoch_2']
    # The middle point (alpha = 0) is the checkpoint itself.
    model, batches = tool.build_model_and_batches(toy_checkpoints['config'],
                                                  'val', 2)
    load_weights(model, tool.load_state(ckpts[1]))
    center = make_batch_loss(model, batches)()['loss']
    assert one['curves']['epoch_2'][1]['loss'] == pytest.approx(center)
    two = tool.main([
        toy_checkpoints['config'], '--mode', '2d', '--checkpoints', ckpts[1],
        '--trajectory', f'SEMA={osp.dirname(ckpts[0])}/epoch_*.pth',
        '--directions', 'pca', '--points', '3', '--batches', '2', '--out',
        str(tmp_path)
    ])
    assert np.array(two['loss']).shape == (3, 3)
    # The last checkpoint of the trajectory is the center.
    assert two['trajectories']['SEMA'][-1] == pytest.approx([0, 0],
                                                            abs=1e-9)
    assert (tmp_path / 'landscape_2d.png').stat().st_size > 5000
