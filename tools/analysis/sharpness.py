"""Measure how sharp trained weights are: Hessian eigenvalue, epsilon-
sharpness, Hessian trace.

For each checkpoint, on a fixed set of training batches (the config's
training set read with its *test* pipeline, so without random
augmentation; a seeded choice of images; the model in eval mode, so batch
normalisation uses its running statistics), the training loss is measured
as a function of the trainable weights ``w``:

* ``lambda_max``: the largest Hessian eigenvalue (power iteration on
  Hessian-vector products, at most ``--power-iters``, relative tolerance
  ``--tol``);
* ``eps_sharpness``: the largest loss increase found within the l2 ball of
  radius ``--eps * ||w||`` around ``w`` by ``--ascent-steps`` normalised
  gradient-ascent steps as in SAM (a lower bound of the maximum);
* ``trace`` (with ``--trace-samples S``): Hutchinson's estimate of the
  Hessian trace, with its standard error.

Every random choice (the images, the start vectors, random numbers drawn
inside the loss) follows ``--seed``, so a measurement repeats exactly on
the same machine. Definitions and limits: :mod:`sema_mm.studies.sharpness`.
Models that change their own state in ``loss()`` (momentum teachers,
queues) are refused, and so, for the Hessian measures, are models whose loss
cannot be differentiated twice (mmcv's RoIAlign in two-stage detectors;
``--power-iters 0`` measures their epsilon-sharpness only).

::

    # checkpoints of one config
    python tools/analysis/sharpness.py CONFIG --checkpoints A.pth B.pth \\
        [--labels A B]
    # every finished run of a comparison (tools/compare.py, tools/demo.py):
    # each run's own config and final checkpoint
    python tools/analysis/sharpness.py --work-root work_dirs/demo

Prints a table and writes ``--out`` (JSON: one record per checkpoint).
EMA and SEMA checkpoints are measured at their ``state_dict``, the EMA
weights that validation saw.
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
from typing import List, Optional, Sequence, Tuple

import torch

import sema_mm  # noqa: F401
from sema_mm.studies.sharpness import (
    SharpnessOptions,
    SharpnessUnsupported,
    final_checkpoint,
    measure_checkpoint,
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description='Largest Hessian eigenvalue, epsilon-sharpness and '
        'Hessian trace of checkpoints on fixed training batches.')
    parser.add_argument('config', nargs='?',
                        help='the config the --checkpoints belong to')
    parser.add_argument('--checkpoints', nargs='+', default=[])
    parser.add_argument('--labels', nargs='+', default=None)
    parser.add_argument('--work-root', default=None,
                        help='measure every finished run under this '
                        'comparison root instead')
    parser.add_argument('--batches', type=int, default=4,
                        help='fixed training batches (default 4)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='their size (default: the config\'s training '
                        'batch size)')
    parser.add_argument('--power-iters', type=int, default=20,
                        help='Hessian-vector products of the power '
                        'iteration at most; 0: no lambda_max (default 20)')
    parser.add_argument('--tol', type=float, default=1e-3,
                        help='relative tolerance of the power iteration')
    parser.add_argument('--eps', type=float, default=1e-3,
                        help='epsilon-sharpness radius relative to ||w||; '
                        '0: none (default 1e-3)')
    parser.add_argument('--ascent-steps', type=int, default=5,
                        help='ascent steps of epsilon-sharpness (default 5)')
    parser.add_argument('--trace-samples', type=int, default=0,
                        help='Hutchinson samples of the Hessian trace; 0: '
                        'none (default)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default=None,
                        help='default: cuda if available, else cpu')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (default 1)')
    parser.add_argument('--out', default='work_dirs/sharpness.json')
    args = parser.parse_args(argv)
    if (args.work_root is None) == (args.config is None):
        parser.error('give a CONFIG with --checkpoints, or --work-root')
    if args.config is not None and not args.checkpoints:
        parser.error('CONFIG needs --checkpoints')
    if args.labels and len(args.labels) != len(args.checkpoints):
        parser.error('--labels must name every checkpoint')
    if args.batches < 1 or args.power_iters < 0 or args.eps < 0 or \
            args.ascent_steps < 1 or args.trace_samples < 0:
        parser.error('--batches and --ascent-steps must be >= 1, '
                     '--power-iters, --eps and --trace-samples >= 0')
    return args


def runs_under(work_root: str) -> List[Tuple[str, str, str]]:
    """``(label, config, checkpoint)`` of every finished run under a
    comparison root: a folder with ``finished.json``, its written config
    ``compare_cfg/*.py`` and a checkpoint."""
    out = []
    for record in sorted(glob.glob(osp.join(work_root, '**', 'finished.json'),
                                   recursive=True)):
        work_dir = osp.dirname(record)
        configs = glob.glob(osp.join(work_dir, 'compare_cfg', '*.py'))
        checkpoint = final_checkpoint(work_dir)
        if len(configs) == 1 and checkpoint is not None:
            out.append((osp.relpath(work_dir, work_root), configs[0],
                        checkpoint))
    if not out:
        raise FileNotFoundError(f'no finished run with a checkpoint under '
                                f'{work_root}')
    return out


def fmt(value) -> str:
    return '-' if value is None else f'{value:.4g}'


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    """Measure, print and save; return the records."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    options = SharpnessOptions(
        batches=args.batches, batch_size=args.batch_size,
        power_iters=args.power_iters, tol=args.tol, eps=args.eps,
        ascent_steps=args.ascent_steps, trace_samples=args.trace_samples,
        seed=args.seed, device=args.device)
    if args.work_root is not None:
        jobs = runs_under(args.work_root)
    else:
        labels = args.labels or [
            osp.splitext(osp.basename(p))[0] for p in args.checkpoints]
        jobs = [(label, args.config, p)
                for label, p in zip(labels, args.checkpoints)]
    records = []
    print('| checkpoint | train loss | lambda_max | eps-sharpness | trace '
          '| s |\n|---|---|---|---|---|---|', flush=True)
    for label, config, checkpoint in jobs:
        try:
            result = measure_checkpoint(config, checkpoint, options)
        except SharpnessUnsupported as e:
            print(f'error: {label}: {e}', file=sys.stderr)
            sys.exit(2)
        result.update(label=label, config=config, options=options.key())
        records.append(result)
        print(f'| {label} | {fmt(result["loss"])} | '
              f'{fmt(result["lambda_max"])} | '
              f'{fmt(result["eps_sharpness"])} | {fmt(result["trace"])} | '
              f'{result["seconds"]:.0f} |', flush=True)
    if osp.dirname(args.out):
        os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(records, f, indent=1)
    print(f'written: {args.out}')
    return records


if __name__ == '__main__':
    main()
