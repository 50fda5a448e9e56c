"""Loss landscapes around trained weights (Li et al., 2018).

Weights are handled as state dicts (name -> tensor). Three kinds of plots,
as in the paper's Figures 2 and 4:

* **interpolation** between two checkpoints ``a`` and ``b`` (Goodfellow et
  al., 2015): ``theta(alpha) = (1 - alpha) * a + alpha * b`` for every
  floating-point tensor, so that ``alpha = 0`` and ``1`` are exactly the
  two checkpoints (normalisation statistics are interpolated too, but not
  extrapolated beyond the ends; integer buffers come from the nearer end);
* **1-D** along a *filter-normalised* random direction ``d`` around a
  center ``c``: ``theta(alpha) = c + alpha * d``;
* **2-D** over two such directions, ``c + x * d1 + y * d2``, with a
  trajectory (e.g. the checkpoints of every epoch) projected onto the
  plane: the coordinates ``(x, y)`` minimising ``|theta - c - x d1 - y
  d2|``.

Filter normalisation (Li et al., Sec. 4): a Gaussian direction is drawn for
every parameter; for a parameter with two or more dimensions each *filter*
(slice along the first, output dimension) of the direction is rescaled to
the norm of the same filter of the center's weights,
``d_i <- d_i / |d_i| * |theta_i|``. One-dimensional parameters (biases,
normalisation scales and shifts) get a zero direction (Li et al.'s default
``ignore='biasbn'``), as do buffers. This makes landscapes of networks with
different weight scales comparable.

The loss at a point is computed by a caller-supplied function of the model
(:func:`make_batch_loss` builds one for an mmengine model and a fixed list
of batches), after :func:`load_weights` copies the point into the model.
"""
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

State = Dict[str, torch.Tensor]


def float_keys(state: State) -> List[str]:
    """Names of the floating-point tensors of ``state``."""
    return [k for k, v in state.items() if torch.is_floating_point(v)]


def interpolate(a: State, b: State, alpha: float,
                param_names: Optional[Iterable[str]] = None) -> State:
    """``(1 - alpha) * a + alpha * b`` for floating-point tensors; other
    tensors come from ``a`` when ``alpha < 0.5``, else from ``b``.

    Args:
        a (State): Weights at ``alpha = 0``.
        b (State): Weights at ``alpha = 1`` (same keys and shapes).
        alpha (float): Position; outside [0, 1] the parameters are
            extrapolated.
        param_names (Iterable[str], optional): The parameters. When given,
            the other floating-point tensors (normalisation statistics) are
            interpolated at ``alpha`` clipped to [0, 1], i.e. beyond the
            ends they stay the nearer checkpoint's (an extrapolated running
            variance can turn negative). Defaults to None: everything is
            extrapolated.

    Returns:
        State: New tensors (equal to ``a`` or ``b`` at 0 and 1).
    """
    params = None if param_names is None else set(param_names)
    if set(a) != set(b):
        raise KeyError('the two state dicts have different keys: '
                       f'{sorted(set(a) ^ set(b))[:5]}')
    out = {}
    for k, va in a.items():
        vb = b[k]
        if va.shape != vb.shape:
            raise ValueError(f'{k}: shapes differ, {tuple(va.shape)} and '
                             f'{tuple(vb.shape)}')
        if torch.is_floating_point(va):
            t = alpha if params is None or k in params else min(
                max(alpha, 0.0), 1.0)
            if t == 0:
                out[k] = va.clone()
            elif t == 1:
                out[k] = vb.clone()
            else:
                out[k] = (1 - t) * va + t * vb
        else:
            out[k] = (va if alpha < 0.5 else vb).clone()
    return out


def filter_normalize(direction: torch.Tensor,
                     weights: torch.Tensor,
                     eps: float = 1e-10) -> torch.Tensor:
    """Rescale each filter (slice along dim 0) of ``direction`` to the norm
    of the same filter of ``weights``.

    Args:
        direction (torch.Tensor): A direction with ``weights``' shape and at
            least 2 dimensions.
        weights (torch.Tensor): The weights it is normalised to.
        eps (float): Guards against a zero direction filter.

    Returns:
        torch.Tensor: The normalised direction (a new tensor).
    """
    if direction.shape != weights.shape or direction.dim() < 2:
        raise ValueError('filter normalisation needs equal shapes with >= 2 '
                         f'dims, got {tuple(direction.shape)} and '
                         f'{tuple(weights.shape)}')
    d = direction.reshape(direction.shape[0], -1)
    w = weights.reshape(weights.shape[0], -1)
    scale = w.norm(dim=1, keepdim=True) / (d.norm(dim=1, keepdim=True) + eps)
    return (d * scale).reshape(direction.shape)


def random_direction(center: State, param_names: Iterable[str],
                     generator: Optional[torch.Generator] = None,
                     ignore_1d: bool = True) -> State:
    """A filter-normalised Gaussian direction around ``center``.

    Args:
        center (State): The weights the direction is scaled to.
        param_names (Iterable[str]): Names of the model's parameters in
            ``center``; every other tensor gets a zero direction.
        generator (torch.Generator, optional): Source of randomness.
        ignore_1d (bool): Zero direction for 1-D parameters (biases,
            normalisation affine); otherwise they get a direction scaled to
            their norm as a whole. Defaults to True.

    Returns:
        State: Direction tensors for every floating-point tensor of
        ``center``.
    """
    params = set(param_names)
    out = {}
    for k in float_keys(center):
        w = center[k]
        if k not in params:
            out[k] = torch.zeros_like(w)
            continue
        d = torch.randn(w.shape, generator=generator, dtype=w.dtype,
                        device='cpu').to(w.device)
        if w.dim() >= 2:
            out[k] = filter_normalize(d, w)
        elif ignore_1d:
            out[k] = torch.zeros_like(w)
        else:
            out[k] = d * (w.norm() / (d.norm() + 1e-10))
    return out


def move(center: State, directions: Sequence[State],
         coords: Sequence[float]) -> State:
    """``center + sum_k coords[k] * directions[k]`` (floating-point tensors;
    others copied from ``center``)."""
    out = {}
    for k, v in center.items():
        if k in directions[0]:
            step = v.clone()
            for d, c in zip(directions, coords):
                if c:
                    step.add_(d[k], alpha=float(c))
            out[k] = step
        else:
            out[k] = v.clone()
    return out


def _flat(state: State, keys: Sequence[str]) -> torch.Tensor:
    return torch.cat([state[k].reshape(-1).double().cpu() for k in keys])


def project(points: Sequence[State], center: State, d1: State,
            d2: State) -> Tuple[List[Tuple[float, float]], List[float]]:
    """Coordinates of ``points`` in the plane ``center + x d1 + y d2``.

    Args:
        points (Sequence[State]): Weights to project (e.g. a trajectory).
        center (State): The plane's origin.
        d1 (State): First direction.
        d2 (State): Second direction.

    Returns:
        tuple: The ``(x, y)`` least-squares coordinates of each point, and
        the fraction of each point's distance from ``center`` that lies
        outside the plane (``|residual| / |theta - center|``; 0 in the
        plane).
    """
    keys = [k for k in d1 if bool(d1[k].any()) or bool(d2[k].any())]
    a = torch.stack([_flat(d1, keys), _flat(d2, keys)], dim=1)
    gram = a.T @ a
    c = _flat(center, keys)
    coords, residual = [], []
    for p in points:
        v = _flat(p, keys) - c
        xy = torch.linalg.solve(gram, a.T @ v)
        r = v - a @ xy
        norm = float(v.norm())
        coords.append((float(xy[0]), float(xy[1])))
        residual.append(float(r.norm()) / norm if norm > 0 else 0.0)
    return coords, residual


def pca_directions(points: Sequence[State], center: State,
                   param_names: Iterable[str]) -> Tuple[State, State, list]:
    """The two principal directions of the displacements ``points -
    center`` (Li et al.'s choice for plotting trajectories).

    The displacements are not mean-centred: the directions are the top two
    right singular vectors of the matrix of ``theta_i - center``, so that
    the plane through ``center`` holds as much of the trajectory's squared
    distance from it as any plane can.

    Args:
        points (Sequence[State]): Trajectory weights (at least 2).
        center (State): Usually the last point of the trajectory.
        param_names (Iterable[str]): Parameters spanned (others get zero).

    Returns:
        tuple: ``d1``, ``d2`` (unit-norm over the parameters) and the
        fraction of the summed squared displacement each holds.
    """
    params = [k for k in float_keys(center) if k in set(param_names)]
    if len(points) < 2:
        raise ValueError('PCA directions need at least 2 points')
    m = torch.stack([_flat(p, params) - _flat(center, params)
                     for p in points])
    _, s, vh = torch.linalg.svd(m, full_matrices=False)
    var = (s**2 / (s**2).sum()).tolist()
    dirs = []
    for row in vh[:2]:
        d, offset = {}, 0
        for k in float_keys(center):
            v = center[k]
            if k in params:
                n = v.numel()
                d[k] = row[offset:offset + n].reshape(v.shape).to(v)
                offset += n
            else:
                d[k] = torch.zeros_like(v)
        dirs.append(d)
    return dirs[0], dirs[1], var[:2]


def load_weights(model: nn.Module, state: State) -> None:
    """Copy ``state`` into ``model``'s parameters and persistent buffers
    (its ``state_dict`` entries) in place.

    Keys of ``state`` missing in the model raise; model entries missing in
    ``state`` raise too, so a point is always fully specified.
    """
    own = model.state_dict(keep_vars=True)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise KeyError(f'weights do not match the model (missing: '
                       f'{missing[:5]}, unexpected: {unexpected[:5]})')
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(state[k])


def make_batch_loss(model: nn.Module, batches: Sequence,
                    with_accuracy: bool = False) -> Callable[[], dict]:
    """A function computing the mean loss of an mmengine model over fixed
    batches, in eval mode.

    Args:
        model (nn.Module): An mmengine ``BaseModel`` (data preprocessor,
            ``mode='loss'`` / ``'predict'`` and ``parse_losses``).
        batches (Sequence): Batches as the dataloader yields them.
        with_accuracy (bool): Also compute the top-1 accuracy (%) from
            ``mode='predict'``, for models whose data samples carry
            ``pred_label`` and ``gt_label`` (mmpretrain classifiers).

    Returns:
        callable: ``f()`` -> ``dict(loss=..., [accuracy=...])``; the loss is
        the mean over batches of the total loss ``parse_losses`` returns.
    """

    def evaluate() -> dict:
        was_training = model.training
        model.eval()
        total, correct, count = 0.0, 0, 0
        try:
            with torch.no_grad():
                for batch in batches:
                    data = model.data_preprocessor(batch, False)
                    losses = model(**data, mode='loss')
                    loss, _ = model.parse_losses(losses)
                    total += float(loss)
                    if with_accuracy:
                        for sample in model(**data, mode='predict'):
                            correct += int(
                                (sample.pred_label == sample.gt_label).all())
                            count += 1
        finally:
            model.train(was_training)
        out = dict(loss=total / max(len(batches), 1))
        if with_accuracy:
            out['accuracy'] = 100.0 * correct / max(count, 1)
        return out

    return evaluate


def scan(model: nn.Module, evaluate: Callable[[], dict],
         states: Iterable[State]) -> List[dict]:
    """Load each state into ``model`` and evaluate it."""
    results = []
    for state in states:
        load_weights(model, state)
        results.append(evaluate())
    return results
