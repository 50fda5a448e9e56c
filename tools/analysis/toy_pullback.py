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

from sema_mm.studies.toy import make_data, train


def test_accuracy(method: str, momentum: float, seed: int,
                  epochs: int) -> float:
    """Test accuracy (%) of one run on circles."""
    data = make_data('circles', seed)
    model = train(method, data, seed, epochs, momentum)
    with torch.no_grad():
        pred = model(data[2]).argmax(1)
    return 100.0 * float((pred == data[3]).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, default=20)
    parser.add_argument('--epochs', type=int, default=300)
    parser.add_argument('--momenta', type=float, nargs='+',
                        default=[0.01, 0.2])
    args = parser.parse_args()
    runs: Dict[str, List[float]] = {}
    seeds = range(args.seeds)
    runs['baseline'] = [
        test_accuracy('baseline', 0.5, s, args.epochs) for s in seeds
    ]
    for m in args.momenta:
        for method in ('EMA', 'SEMA'):
            runs[f'{method}, momentum {m:g}'] = [
                test_accuracy(method, m, s, args.epochs) for s in seeds
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
