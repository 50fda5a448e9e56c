"""Decision boundaries of baseline, EMA and SEMA on 2-D toy data (Fig. 3/A1).

The paper's toy experiment: a 2-layer MLP (one hidden layer of
``--hidden`` ReLU units) is trained by SGD with a fixed learning rate of
0.01 (heavy-ball momentum ``--sgd-momentum``, 0.9 by default; 0 gives plain
SGD) on 50 labelled points of scikit-learn's ``make_circles`` or
``make_moons`` (``--samples`` points in all, noise ``--noise``); the other
points are the test set. An epoch is 5 steps of 10 points. EMA and SEMA use
sema_mm's ``FusedEMA`` (the averaged model behind ``SwitchEMAHook``): EMA
evaluates the average, SEMA also switches it into the model after every
epoch (so the evaluated model is the average too).

Reported per dataset and method, as mean ± sample std over ``--seeds``
seeds (data, initialisation and batch order follow from the seed; the three
methods share them):

* test accuracy (%);
* ECE: expected calibration error on the test points (10 equal-width
  confidence bins), in %;
* boundary width: the mean width, in input units, of the band where the
  predicted probability of class 1 lies in [0.5 - d, 0.5 + d] (d =
  ``--band``, 0.25), i.e. the band's area divided by the length of the
  decision boundary, on a 200 x 200 grid over the data (+0.5 margin); and
  the band's share of the grid's area (see
  :mod:`sema_mm.studies.decision`).

Plots: ``toy_decision_<dataset>.png``, one panel per method for seed 0
(predicted probability shaded, decision boundary solid, band edges dashed,
labelled points as triangles, test points grey), and the Markdown table
``toy_decision.md`` in ``--out``.

Usage::

    python tools/analysis/toy_decision.py [--datasets circles moons] \\
        [--seeds 20] [--epochs 300] [--momentum 0.2] [--out DIR]
"""
import argparse
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.logging import print_log
from torch import nn

from sema_mm.studies.decision import (
    accuracy,
    band_fraction,
    boundary_width,
    expected_calibration_error,
    grid,
    summarise,
)
from sema_mm.studies.toy import make_data, train

METHODS = ('baseline', 'EMA', 'SEMA')


def probabilities(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Predicted class probabilities, ``(N, 2)``."""
    with torch.no_grad():
        return torch.softmax(model(x), dim=1).numpy()


def evaluate(model: nn.Module, data, band: float = 0.25,
             bins: int = 10, steps: int = 200) -> Dict[str, float]:
    """Accuracy (%), ECE (%), boundary width and band fraction (%)."""
    xtr, _, xte, yte = data
    probs = probabilities(model, xte)
    xs, ys, pts = grid(torch.cat([xtr, xte]).numpy(), steps)
    p1 = probabilities(model, torch.tensor(pts, dtype=torch.float32))[:, 1]
    p1 = p1.reshape(len(ys), len(xs))
    return dict(
        accuracy=accuracy(probs, yte.numpy()),
        ece=100.0 * expected_calibration_error(probs, yte.numpy(), bins),
        width=boundary_width(xs, ys, p1, band),
        band=100.0 * band_fraction(p1, band))


def plot(models: Dict[str, nn.Module], data, metrics: Dict[str, dict],
         path: str, title: str, band: float = 0.25) -> str:
    """One panel per method: probability, boundary, band, points."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    xtr, ytr, xte, _ = data
    xs, ys, pts = grid(torch.cat([xtr, xte]).numpy(), 200)
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models),
                                                      4.2))
    for ax, (name, model) in zip(np.atleast_1d(axes), models.items()):
        p1 = probabilities(model, torch.tensor(pts, dtype=torch.float32))
        p1 = p1[:, 1].reshape(len(ys), len(xs))
        ax.contourf(xs, ys, p1, levels=np.linspace(0, 1, 21),
                    cmap='RdYlBu_r', alpha=0.55)
        ax.contour(xs, ys, p1, levels=[0.5], colors='k', linewidths=1.6)
        ax.contour(xs, ys, p1, levels=[0.5 - band, 0.5 + band], colors='k',
                   linewidths=0.8, linestyles='dashed')
        ax.scatter(xte[:, 0], xte[:, 1], s=5, c='grey', alpha=0.5)
        ax.scatter(xtr[:, 0], xtr[:, 1], s=45, marker='^',
                   c=['#d7301f' if int(c) else '#fdae61' for c in ytr],
                   edgecolors='k', linewidths=0.6)
        m = metrics[name]
        ax.set_title(f'{name}: acc {m["accuracy"]:.1f} %, ECE '
                     f'{m["ece"]:.1f} %\nwidth {m["width"]:.3f}',
                     fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def table(results: Dict[str, Dict[str, List[dict]]], band: float) -> str:
    """Markdown table: mean ± std over seeds per dataset and method."""
    lines = [
        '| dataset | method | seeds | test accuracy (%) | ECE (%) | '
        f'boundary width (p in [{0.5 - band:g}, {0.5 + band:g}]) | '
        'band area (% of grid) |',
        '|---|---|---|---|---|---|---|',
    ]
    for dataset, by_method in results.items():
        for method, runs in by_method.items():
            cells = []
            for key, digits in (('accuracy', 1), ('ece', 1), ('width', 3),
                                ('band', 1)):
                mean, std = summarise([r[key] for r in runs])
                cells.append(f'{mean:.{digits}f} ± {std:.{digits}f}')
            lines.append(f'| {dataset} | {method} | {len(runs)} | ' +
                         ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--datasets', nargs='+', default=['circles', 'moons'],
                        choices=['circles', 'moons'])
    parser.add_argument('--seeds', type=int, default=20,
                        help='number of seeds (0 .. N-1)')
    parser.add_argument('--epochs', type=int, default=300)
    parser.add_argument('--momentum', type=float, default=0.2,
                        help='EMA/SEMA momentum, the weight of the new '
                        'weights (0.2: 0.8 ** 5 = 0.33 of the previous '
                        'switch is left after an epoch of 5 steps)')
    parser.add_argument('--lr', type=float, default=0.01)
    parser.add_argument('--sgd-momentum', type=float, default=0.9)
    parser.add_argument('--hidden', type=int, default=100)
    parser.add_argument('--samples', type=int, default=1000)
    parser.add_argument('--labelled', type=int, default=50)
    parser.add_argument('--noise', type=float, default=0.1)
    parser.add_argument('--band', type=float, default=0.25,
                        help='half-width d of the probability band')
    parser.add_argument('--out', default='work_dirs/toy_decision')
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.epochs < 1:
        parser.error('--seeds and --epochs must be >= 1')
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    """Train every dataset x method x seed, plot seed 0, print the table."""
    args = parse_args(argv)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    results: Dict[str, Dict[str, List[dict]]] = {}
    for dataset in args.datasets:
        results[dataset] = {m: [] for m in METHODS}
        for seed in range(args.seeds):
            data = make_data(dataset, seed, args.samples, args.labelled,
                             args.noise)
            models = {
                m: train(m, data, seed, args.epochs, args.momentum, args.lr,
                         args.sgd_momentum, hidden=args.hidden)
                for m in METHODS
            }
            metrics = {
                m: evaluate(model, data, args.band)
                for m, model in models.items()
            }
            for m in METHODS:
                results[dataset][m].append(metrics[m])
            if seed == 0:
                path = plot(
                    models, data, metrics,
                    osp.join(args.out, f'toy_decision_{dataset}.png'),
                    f'{dataset}, {args.labelled} labelled points, seed 0, '
                    f'{args.epochs} epochs, momentum {args.momentum:g}',
                    args.band)
                print_log(f'plot: {path}', logger='current')
        print_log(f'{dataset}: {args.seeds} seeds done '
                  f'({time.perf_counter() - start:.0f} s)', logger='current')
    text = table(results, args.band)
    header = (f'{args.labelled} labelled points of {args.samples}, noise '
              f'{args.noise:g}, MLP 2-{args.hidden}-2, SGD lr {args.lr:g} '
              f'momentum {args.sgd_momentum:g}, {args.epochs} epochs of '
              f'{-(-args.labelled // 10)} steps, EMA/SEMA momentum '
              f'{args.momentum:g}, {args.seeds} seeds (mean ± std)')
    with open(osp.join(args.out, 'toy_decision.md'), 'w') as f:
        f.write(header + '\n\n' + text + '\n')
    print(header)
    print(text)
    return results


if __name__ == '__main__':
    main()
