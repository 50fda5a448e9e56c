"""Accuracy, calibration and decision-boundary width of a classifier.

Used by ``tools/analysis/toy_decision.py`` (the paper's Figure 3 / A1: a
2-layer MLP on 2-D toy data), but the functions take plain arrays.

Calibration is the expected calibration error (ECE, Guo et al., 2017): the
predictions are put in ``n_bins`` equal-width bins of confidence (the
largest predicted probability; bin ``b`` holds confidences in
``(b / n, (b + 1) / n]``, the first also 0), and

.. math::

    \\mathrm{ECE} = \\sum_b \\frac{|B_b|}{N}\\,
        \\bigl|\\mathrm{acc}(B_b) - \\mathrm{conf}(B_b)\\bigr| .

The paper reports a "decision boundary width" without defining it. Here,
for a binary classifier evaluated on a regular grid over the input plane,
the *boundary band* is where the predicted probability of class 1 lies in
``[0.5 - d, 0.5 + d]`` (``d = 0.25`` by default: probabilities between
0.25 and 0.75), and

* ``band_fraction`` is the fraction of the grid's area inside the band;
* ``boundary_width`` is the band's area divided by the length of the
  decision boundary (the ``p = 0.5`` contour) inside the grid: the mean
  width of the band in input units. For ``p(x) = sigmoid(k * x_1)`` it is
  ``2 * logit(0.5 + d) / k`` (an exact answer the tests check).

A wider band means predictions that become confident more gradually away
from the boundary.
"""
from typing import Sequence, Tuple

import numpy as np


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray,
                               n_bins: int = 10) -> float:
    """Expected calibration error of class probabilities.

    Args:
        probs (np.ndarray): ``(N, C)`` predicted class probabilities, or
            ``(N,)`` probabilities of class 1 of a binary classifier.
        labels (np.ndarray): ``(N,)`` true labels.
        n_bins (int): Equal-width confidence bins. Defaults to 10.

    Returns:
        float: The ECE, in [0, 1].
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim == 1:
        probs = np.stack([1 - probs, probs], axis=1)
    if len(probs) == 0:
        raise ValueError('no predictions')
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    # Bin b holds (b / n, (b + 1) / n]; confidence 0 goes to bin 0.
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() -
                                     conf[mask].mean())
    return float(ece)


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent (``probs`` as for
    :func:`expected_calibration_error`)."""
    probs = np.asarray(probs, dtype=np.float64)
    pred = (probs > 0.5).astype(int) if probs.ndim == 1 else \
        probs.argmax(axis=1)
    return float(100.0 * np.mean(pred == np.asarray(labels)))


def band_fraction(p1: np.ndarray, d: float = 0.25) -> float:
    """Fraction of grid points with ``|p1 - 0.5| <= d``.

    Args:
        p1 (np.ndarray): Probability of class 1 on a regular grid.
        d (float): Half-width of the band in probability. Defaults to 0.25.
    """
    if not 0 < d <= 0.5:
        raise ValueError(f'd must lie in (0, 0.5], got {d}')
    return float(np.mean(np.abs(np.asarray(p1) - 0.5) <= d))


def contour_length(xs: np.ndarray, ys: np.ndarray, z: np.ndarray,
                   level: float = 0.5) -> float:
    """Total length of the ``level`` contour of ``z`` on the grid.

    Args:
        xs (np.ndarray): ``(W,)`` grid x coordinates.
        ys (np.ndarray): ``(H,)`` grid y coordinates.
        z (np.ndarray): ``(H, W)`` values (``z[i, j]`` at ``(xs[j],
            ys[i])``).
        level (float): The contour level. Defaults to 0.5.

    Returns:
        float: Summed length of all contour lines, in input units.
    """
    import contourpy

    gen = contourpy.contour_generator(
        np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64),
        np.asarray(z, dtype=np.float64),
        line_type=contourpy.LineType.Separate)
    total = 0.0
    for line in gen.lines(level):
        if len(line) > 1:
            total += float(np.sum(np.linalg.norm(np.diff(line, axis=0),
                                                 axis=1)))
    return total


def boundary_width(xs: np.ndarray, ys: np.ndarray, p1: np.ndarray,
                   d: float = 0.25) -> float:
    """Mean width of the boundary band (see the module docstring).

    Args:
        xs (np.ndarray): ``(W,)`` evenly spaced grid x coordinates.
        ys (np.ndarray): ``(H,)`` evenly spaced grid y coordinates.
        p1 (np.ndarray): ``(H, W)`` probability of class 1 on the grid.
        d (float): Half-width of the band in probability. Defaults to 0.25.

    Returns:
        float: Band area / boundary length, in input units; NaN when the
        grid holds no boundary.
    """
    xs, ys = np.asarray(xs), np.asarray(ys)
    area = (xs[-1] - xs[0]) * (ys[-1] - ys[0]) * band_fraction(p1, d)
    length = contour_length(xs, ys, p1, 0.5)
    return float(area / length) if length > 0 else float('nan')


def grid(points: np.ndarray, steps: int = 200,
         margin: float = 0.5) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A regular grid over the bounding box of ``points`` plus ``margin``.

    Returns:
        tuple: ``xs`` (W,), ``ys`` (H,) and the ``(H * W, 2)`` grid points,
        row by row (``y`` outer).
    """
    points = np.asarray(points)
    lo, hi = points.min(axis=0) - margin, points.max(axis=0) + margin
    xs = np.linspace(lo[0], hi[0], steps)
    ys = np.linspace(lo[1], hi[1], steps)
    gx, gy = np.meshgrid(xs, ys)
    return xs, ys, np.stack([gx.ravel(), gy.ravel()], axis=1)


def summarise(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation of finite values."""
    arr = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if len(arr) == 0:
        return float('nan'), float('nan')
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return float(arr.mean()), std
