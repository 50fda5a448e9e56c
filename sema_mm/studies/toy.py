"""The 2-D toy experiment of the SEMA paper (Fig. 3 / A1): data, model and
training loop shared by ``tools/analysis/toy_decision.py`` and
``tools/analysis/toy_pullback.py``.

50 class-balanced labelled points of scikit-learn's circles or two moons (the
rest are test points), a 2-layer MLP and SGD; EMA and SEMA use sema_mm's
:class:`~sema_mm.ema.FusedEMA` (SEMA also switches it into the model after
every epoch).
"""
from typing import Optional

import torch
from torch import nn

from ..ema import FusedEMA


def make_data(name: str, seed: int, n: int = 1000, labelled: int = 50,
              noise: float = 0.1):
    """``labelled`` class-balanced training points, the rest test points.

    Args:
        name (str): ``'circles'`` (factor 0.5) or ``'moons'``.
        seed (int): Seed of the points and the labelled subset.
        n (int): Number of points. Defaults to 1000.
        labelled (int): Training points. Defaults to 50.
        noise (float): Gaussian noise of the points. Defaults to 0.1.

    Returns:
        tuple: ``x_train, y_train, x_test, y_test`` tensors.
    """
    from sklearn.datasets import make_circles, make_moons
    if name == 'circles':
        x, y = make_circles(n_samples=n, noise=noise, factor=0.5,
                            random_state=seed)
    elif name == 'moons':
        x, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    else:
        raise ValueError(f'unknown dataset {name!r}')
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


def make_mlp(hidden: int = 100) -> nn.Module:
    """The 2-layer MLP: 2 -> hidden (ReLU) -> 2."""
    return nn.Sequential(nn.Linear(2, hidden), nn.ReLU(),
                         nn.Linear(hidden, 2))


def train(method: str, data, seed: int, epochs: int, momentum: float,
          lr: float = 0.01, sgd_momentum: float = 0.9, batch: int = 10,
          hidden: int = 100, trajectory: Optional[list] = None
          ) -> nn.Module:
    """Train one model; return the model that is evaluated.

    Args:
        method (str): ``'baseline'``, ``'EMA'`` or ``'SEMA'``.
        data (tuple): ``x_train, y_train, ...`` from :func:`make_data`.
        seed (int): Seed of the initialisation and batch order.
        epochs (int): Epochs (passes over the training points).
        momentum (float): EMA momentum (weight of the new weights).
        lr (float): SGD learning rate. Defaults to 0.01.
        sgd_momentum (float): SGD heavy-ball momentum. Defaults to 0.9.
        batch (int): Points per step. Defaults to 10.
        hidden (int): Hidden units. Defaults to 100.
        trajectory (list, optional): If given, the evaluated model's state
            dict is appended after every epoch.

    Returns:
        nn.Module: The raw model (baseline), the EMA (EMA) or the model
        after the last switch (SEMA).
    """
    xtr, ytr = data[0], data[1]
    torch.manual_seed(seed)
    model = make_mlp(hidden)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=sgd_momentum)
    ema = FusedEMA(model, momentum=momentum)
    ema.seed(model)
    g = torch.Generator().manual_seed(seed)
    evaluated = ema.module if method == 'EMA' else model
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
        if trajectory is not None:
            trajectory.append({
                k: v.detach().clone()
                for k, v in evaluated.state_dict().items()
            })
    return evaluated
