"""Loss landscapes of trained checkpoints of any config (Figures 2 and 4).

The model and the data come from the config: a Runner is built from it (in
a temporary work dir), ``--batches`` batches of its ``--split`` dataloader
are read once, and the mean loss over them (the model's total loss, in eval
mode) is computed at every point. Checkpoints are read with mmengine's
loader; their ``state_dict`` is used (for EMA and SEMA runs that is the EMA,
the weights validation saw).

Modes (see :mod:`sema_mm.studies.landscape` for the definitions):

``interp``
    Linear interpolation between two checkpoints, ``(1 - a) A + a B`` for
    ``a`` over ``--range`` (default -0.5 .. 1.5)::

        python tools/analysis/loss_landscape.py CONFIG --mode interp \\
            --checkpoints A.pth B.pth

``1d``
    Each checkpoint along its own filter-normalised random direction
    (drawn with the same ``--seed``), ``theta + a d`` for ``a`` over
    ``--range`` (default -1 .. 1), all curves in one plot (Figure 2)::

        python tools/analysis/loss_landscape.py CONFIG --mode 1d \\
            --checkpoints base.pth ema.pth sema.pth --labels base EMA SEMA

``2d``
    The loss over the plane through the first checkpoint spanned by two
    filter-normalised random directions (``--directions random``) or by the
    two principal directions of the first trajectory (``pca``, Li et al.'s
    choice for trajectories, which random directions barely see), with each
    ``--trajectory NAME=GLOB`` (e.g. the ``epoch_*.pth`` of a run, sorted by
    epoch) projected onto it (Figure 4). How much of each trajectory's
    distance lies outside the plane is printed::

        python tools/analysis/loss_landscape.py CONFIG --mode 2d \\
            --checkpoints sema/epoch_30.pth \\
            --trajectory 'SEMA=sema/epoch_*.pth' --directions pca

Writes ``<out>/landscape_<mode>.png`` and ``landscape_<mode>.json`` (the
coordinates and losses). ``--accuracy`` adds the top-1 accuracy curve for
classifiers whose predictions carry ``pred_label`` (mmpretrain).
"""
import argparse
import glob
import json
import logging
import os
import os.path as osp
import re
import tempfile
import time
import uuid
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger, print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

import sema_mm  # noqa: F401
from sema_mm.studies.landscape import (
    interpolate,
    make_batch_loss,
    move,
    pca_directions,
    project,
    random_direction,
    scan,
)

LOGGER = 'sema_landscape'


def load_state(path: str) -> Dict[str, torch.Tensor]:
    """The ``state_dict`` of a checkpoint (on the CPU)."""
    ckpt = _load_checkpoint(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    return {
        (k[7:] if k.startswith('module.') else k): v
        for k, v in state.items()
    }


def build_model_and_batches(config: str, split: str, batches: int,
                            cfg_options: Optional[dict] = None):
    """Build the config's model and read ``batches`` batches of ``split``.

    Returns:
        tuple: The model (unwrapped, on the CPU) and the list of batches.
    """
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.work_dir = tempfile.mkdtemp(prefix='landscape_')
    cfg.launcher = 'none'
    cfg.experiment_name = f'landscape_{uuid.uuid4().hex[:8]}'
    cfg.load_from = None
    cfg.resume = False
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    loader_cfg = cfg.get(f'{split}_dataloader')
    if loader_cfg is None:
        raise KeyError(f'the config has no {split}_dataloader')
    if split == 'train':
        loader = runner.train_dataloader
    elif split == 'val':
        loader = runner.val_dataloader
    else:
        loader = runner.test_dataloader
    data = []
    for batch in loader:
        data.append(batch)
        if len(data) >= batches:
            break
    model = runner.model
    model = model.module if is_model_wrapper(model) else model
    return model.cpu(), data


def sorted_by_number(paths: Sequence[str]) -> List[str]:
    """Sort checkpoint paths by the last number in their names."""

    def key(p: str) -> Tuple[int, str]:
        nums = re.findall(r'\d+', osp.basename(p))
        return (int(nums[-1]) if nums else -1, p)

    return sorted(paths, key=key)


def parse_trajectories(items: Sequence[str]) -> Dict[str, List[str]]:
    """``NAME=GLOB`` items -> name -> checkpoint paths sorted by number."""
    out = {}
    for item in items or []:
        name, eq, pattern = item.partition('=')
        if not eq:
            name, pattern = f'trajectory {len(out) + 1}', item
        paths = sorted_by_number(glob.glob(pattern))
        if not paths:
            raise FileNotFoundError(f'no checkpoint matches {pattern!r}')
        out[name] = paths
    return out


def default_labels(paths: Sequence[str]) -> List[str]:
    """Names of checkpoints: their paths below the common folder, without
    the extension (the file name alone for one checkpoint)."""
    if len(paths) == 1:
        return [osp.splitext(osp.basename(paths[0]))[0]]
    common = osp.commonpath([osp.abspath(p) for p in paths])
    names = [osp.splitext(osp.relpath(osp.abspath(p), common))[0]
             for p in paths]
    return [n if names.count(n) == 1 else f'{n} ({i + 1})'
            for i, n in enumerate(names)]


def evaluate_at(model, evaluate, state: Dict[str, torch.Tensor]) -> float:
    """The loss at one point."""
    return scan(model, evaluate, [state])[0]['loss']


def plot_1d(xs: Sequence[float], curves: Dict[str, List[dict]], path: str,
            xlabel: str, title: str) -> str:
    """Loss (and accuracy, if computed) against the position."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    has_acc = any('accuracy' in r for rs in curves.values() for r in rs)
    fig, axes = plt.subplots(1, 2 if has_acc else 1,
                             figsize=(11 if has_acc else 6, 4),
                             squeeze=False)
    for name, rows in curves.items():
        axes[0][0].plot(xs, [r['loss'] for r in rows], label=name)
        if has_acc:
            axes[0][1].plot(xs, [r['accuracy'] for r in rows], label=name)
    axes[0][0].set_ylabel('loss')
    axes[0][0].set_yscale('log')
    if has_acc:
        axes[0][1].set_ylabel('top-1 accuracy (%)')
    for ax in axes[0]:
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_2d(xs: Sequence[float], ys: Sequence[float], loss: np.ndarray,
            trajectories: Dict[str, List[Tuple[float, float]]], path: str,
            title: str) -> str:
    """Contours of the loss over the plane, with projected trajectories."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    levels = np.geomspace(max(float(loss.min()), 1e-6),
                          float(loss.max()), 25)
    cs = ax.contourf(xs, ys, loss, levels=levels, cmap='viridis',
                     norm=matplotlib.colors.LogNorm())
    ax.contour(xs, ys, loss, levels=levels, colors='w', linewidths=0.3)
    bar = fig.colorbar(cs, ax=ax, label='loss', ticks=levels[::4])
    bar.ax.set_yticklabels([f'{v:.3g}' for v in levels[::4]])
    for name, coords in trajectories.items():
        tx, ty = zip(*coords)
        ax.plot(tx, ty, '.-', label=name, linewidth=1.2, markersize=5)
        ax.plot(tx[-1], ty[-1], '*', markersize=12, color='w',
                markeredgecolor='k')
    ax.plot(0, 0, 'x', color='r', markersize=9, label='center')
    ax.set_xlabel('direction 1')
    ax.set_ylabel('direction 2')
    if trajectories:
        ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description='Loss landscapes (interpolation, 1-D, 2-D with '
        'trajectories) of checkpoints of a config.')
    parser.add_argument('config', help='the config the checkpoints belong to')
    parser.add_argument('--mode', choices=['interp', '1d', '2d'],
                        default='1d')
    parser.add_argument('--checkpoints', nargs='+', required=True)
    parser.add_argument('--labels', nargs='+', default=None,
                        help='curve names (default: file names)')
    parser.add_argument('--trajectory', nargs='+', default=None,
                        metavar='[NAME=]GLOB',
                        help='2d: checkpoints to project, in epoch order')
    parser.add_argument('--directions', choices=['random', 'pca'],
                        default='random', help='2d: plane directions')
    parser.add_argument('--range', nargs=2, type=float, default=None,
                        metavar=('MIN', 'MAX'),
                        help='interp: -0.5 1.5; 1d and 2d (random): -1 1; '
                        '2d (pca): the trajectory\'s extent + 20 %%')
    parser.add_argument('--points', type=int, default=21,
                        help='points per axis')
    parser.add_argument('--split', choices=['train', 'val', 'test'],
                        default='val')
    parser.add_argument('--batches', type=int, default=4,
                        help='batches the loss is averaged over')
    parser.add_argument('--accuracy', action='store_true',
                        help='also compute top-1 accuracy (classifiers)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the random directions')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default='work_dirs/loss_landscape')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if args.mode == 'interp' and len(args.checkpoints) != 2:
        parser.error('--mode interp needs exactly two --checkpoints')
    if args.labels and len(args.labels) != len(args.checkpoints):
        parser.error('--labels must name every checkpoint')
    if args.mode == '2d' and args.directions == 'pca' and \
            not args.trajectory:
        parser.error('--directions pca needs --trajectory')
    if args.points < 2 or args.batches < 1:
        parser.error('--points must be >= 2 and --batches >= 1')
    return args


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Compute, plot and save the landscape; return the numbers."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    # A logger of its own: the Runner built below becomes mmengine's
    # "current" logger, at WARNING level.
    MMLogger.get_instance(LOGGER, logger_name=LOGGER, log_level='INFO')
    start = time.perf_counter()
    model, batches = build_model_and_batches(args.config, args.split,
                                             args.batches, args.cfg_options)
    evaluate = make_batch_loss(model, batches, args.accuracy)
    params = [n for n, _ in model.named_parameters()]
    labels = args.labels or default_labels(args.checkpoints)
    states = [load_state(p) for p in args.checkpoints]
    result: dict = dict(mode=args.mode, config=args.config,
                        checkpoints=args.checkpoints, labels=labels,
                        split=args.split, batches=len(batches))
    png = osp.join(args.out, f'landscape_{args.mode}.png')
    if args.mode in ('interp', '1d'):
        lo, hi = args.range or ((-0.5, 1.5) if args.mode == 'interp' else
                                (-1.0, 1.0))
        xs = np.linspace(lo, hi, args.points).tolist()
        curves = {}
        if args.mode == 'interp':
            a, b = states
            name = f'{labels[0]} -> {labels[1]}'
            curves[name] = scan(model, evaluate,
                                (interpolate(a, b, x, params) for x in xs))
            xlabel = f'alpha (0: {labels[0]}, 1: {labels[1]})'
        else:
            for name, state in zip(labels, states):
                g = torch.Generator().manual_seed(args.seed)
                d = random_direction(state, params, g)
                curves[name] = scan(model, evaluate,
                                    (move(state, [d], [x]) for x in xs))
            xlabel = 'step along a filter-normalised random direction'
        result.update(x=xs, curves=curves)
        plot_1d(xs, curves, png, xlabel,
                f'{osp.basename(args.config)}: {args.split} loss over '
                f'{len(batches)} batches')
        for name, rows in curves.items():
            at = {round(x, 6): r['loss'] for x, r in zip(xs, rows)}
            print(f'{name}: min loss {min(at.values()):.4f}; '
                  + ', '.join(f'loss({k:g}) = {v:.4f}'
                              for k, v in at.items()
                              if k in (lo, 0.0, 1.0, hi)))
    else:
        center = states[0]
        trajectories = parse_trajectories(args.trajectory)
        traj_states = {
            name: [load_state(p) for p in paths]
            for name, paths in trajectories.items()
        }
        if args.directions == 'pca':
            first = next(iter(traj_states.values()))
            d1, d2, var = pca_directions(first, center, params)
            result['pca_variance'] = var
            print_log(f'PCA directions hold {100 * var[0]:.1f} % and '
                      f'{100 * var[1]:.1f} % of the first trajectory\'s '
                      'squared distance from the center', logger=LOGGER)
        else:
            g = torch.Generator().manual_seed(args.seed)
            d1 = random_direction(center, params, g)
            d2 = random_direction(center, params, g)
        projected, residuals = {}, {}
        for name, pts in traj_states.items():
            projected[name], residuals[name] = project(pts, center, d1, d2)
            print_log(
                f'{name}: {len(pts)} checkpoints; the part of their '
                'distance from the center outside the plane: median '
                f'{100 * float(np.median(residuals[name])):.1f} %',
                logger=LOGGER)
        if args.range:
            lo, hi = args.range
            xs = np.linspace(lo, hi, args.points)
            ys = xs.copy()
        elif args.directions == 'pca' and projected:
            allc = np.array([c for cs in projected.values() for c in cs])
            span = np.abs(allc).max(axis=0) * 1.2 + 1e-8
            span = np.maximum(span, 0.25 * span.max())
            xs = np.linspace(-span[0], span[0], args.points)
            ys = np.linspace(-span[1], span[1], args.points)
        else:
            xs = np.linspace(-1, 1, args.points)
            ys = xs.copy()
        rows = scan(model, evaluate,
                    (move(center, [d1, d2], [x, y]) for y in ys
                     for x in xs))
        loss = np.array([r['loss'] for r in rows]).reshape(len(ys), len(xs))
        result.update(x=xs.tolist(), y=ys.tolist(), loss=loss.tolist(),
                      directions=args.directions,
                      trajectories={k: [list(c) for c in v]
                                    for k, v in projected.items()},
                      residual=residuals)
        plot_2d(xs, ys, loss, projected, png,
                f'{labels[0]}: {args.split} loss, {args.directions} '
                'directions')
        i, j = np.unravel_index(int(loss.argmin()), loss.shape)
        print(f'{labels[0]}: loss at the center '
              f'{evaluate_at(model, evaluate, center):.4f}, lowest on the '
              f'grid {float(loss[i, j]):.4f} at ({xs[j]:.3g}, {ys[i]:.3g})')
    with open(osp.join(args.out, f'landscape_{args.mode}.json'), 'w') as f:
        json.dump(result, f)
    print_log(f'plot: {png} ({time.perf_counter() - start:.0f} s)',
              logger=LOGGER, level=logging.INFO)
    return result


if __name__ == '__main__':
    main()
