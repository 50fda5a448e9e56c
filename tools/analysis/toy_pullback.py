"""The paper's toy experiment (Fig. 3): baseline vs EMA vs SEMA on circles.

A 2-layer MLP (100 hidden units) is trained by SGD (lr 0.01, momentum 0.9)
on 50 labelled points of scikit-learn's ``make_circles`` (1000 points, noise
0.1, factor 0.5; the other 950 are the test set), in epochs of 5 steps of 10
points. EMA and SEMA use sema_mm's ``FusedEMA`` (the averaged model behind
``SwitchEMAHook``): EMA evaluates the average, SEMA also switches it into the
model after every epoch. With few steps per epoch a small momentum makes each
switch pull the model back (``(1 - m) ** 5`` of the previous switch stays),
which is what ``SwitchEMAHook``'s pull-back warning is about.

Usage::

    python tools/analysis/toy_pullback.py --seeds 20 --epochs 300 \
        --momenta 0.01 0.2
"""
import argparse
import statistics
from typing import Dict, List

import torch
from sklearn.datasets import make_circles
from torch import nn

from sema_mm.models import FusedEMA


def make_data(seed: int, n: int = 1000, labelled: int = 50):
    """Circles with ``labelled`` training points (balanced), rest test."""
    x, y = make_circles(n_samples=n, noise=0.1, factor=0.5,
                        random_state=seed)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    g = torch.Generator().manual_seed(seed)
    idx = torch.cat([
        torch.nonzero(y == c).flatten()[torch.randperm(
            int((y == c).sum()), generator=g)[:labelled // 2]]
        for c in (0, 1)
    ])
    test = torch.ones(n, dtype=torch.bool)
    test[idx] = False
    return x[idx], y[idx], x[test], y[test]


def train(method: str, momentum: float, seed: int, epochs: int,
          batch: int = 10, lr: float = 0.01, hidden: int = 100) -> float:
    """Test accuracy (%) of one run."""
    xtr, ytr, xte, yte = make_data(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(),
                          nn.Linear(hidden, 2))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    ema = FusedEMA(model, momentum=momentum)
    ema.seed(model)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), batch):
            j = order[i:i + batch]
            loss = nn.functional.cross_entropy(model(xtr[j]), ytr[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
            ema.update_parameters(model)
        if method == 'SEMA':
            ema.pairs_for(model).copy_to_source()
    evaluated = ema.module if method == 'EMA' else model
    with torch.no_grad():
        pred = evaluated(xte).argmax(1)
    return 100.0 * float((pred == yte).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, default=20)
    parser.add_argument('--epochs', type=int, default=300)
    parser.add_argument('--momenta', type=float, nargs='+',
                        default=[0.01, 0.2])
    args = parser.parse_args()
    runs: Dict[str, List[float]] = {}
    runs['baseline'] = [
        train('baseline', 0.5, s, args.epochs) for s in range(args.seeds)
    ]
    for m in args.momenta:
        for method in ('EMA', 'SEMA'):
            runs[f'{method}, momentum {m:g}'] = [
                train(method, m, s, args.epochs) for s in range(args.seeds)
            ]
    print(f'circles, 50 labelled points, {args.epochs} epochs x 5 steps, '
          f'{args.seeds} seeds')
    print('| method | pull-back per switch | test accuracy (%), mean | std |')
    print('|---|---|---|---|')
    for name, accs in runs.items():
        m = float(name.split()[-1]) if 'momentum' in name else None
        pull = f'{(1 - m) ** 5:.3f}' if m is not None and 'SEMA' in name \
            else ''
        print(f'| {name} | {pull} | {statistics.mean(accs):.1f} | '
              f'{statistics.stdev(accs):.1f} |')


if __name__ == '__main__':
    main()
