"""Plot logged scalars of one or more mmengine runs to a PNG.

For runs started by hand (``tools/train.py``, ``tools/dist_train.sh``, ...):
reads every ``<timestamp>/vis_data/scalars.json`` under each work dir (a
resumed run reads as one) and plots the chosen scalars, one panel each, one
line per run: validation metrics by epoch, training scalars (``loss``,
``lr``, ...) by epoch, and SwitchEMAHook's ``sema/switch_distance``,
``sema/switches``, ``sema/skipped_updates`` by the epoch of each switch.

Usage::

    python tools/analysis/plot_log.py work_dirs/sema work_dirs/ema \\
        [--keys accuracy/top1 loss sema/switch_distance] [--out curves.png]

Without ``--keys``: the validation metric (found as ``tools/compare.py``
does), ``loss``, and ``sema/switch_distance`` when a run logged switches.
Each run is labelled by the last parts of its path that tell it from the
others (``sema/seed0``, ``ema/seed0`` for the runs of a comparison).
"""
import argparse
import os.path as osp
from typing import List, Optional, Sequence

from sema_mm.comparison.results import (
    pick_metric,
    plot_scalars,
    read_run,
    scalar_curve,
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+', help='mmengine work dirs')
    parser.add_argument('--keys', nargs='+', help='scalars to plot')
    parser.add_argument('--out', default='scalars.png', help='PNG to write')
    return parser.parse_args(argv)


def default_keys(logs) -> List[str]:
    """The validation metric, the loss and the switch distance, where
    logged."""
    keys = []
    try:
        keys.append(pick_metric(list(logs.values())))
    except KeyError:
        pass
    keys += [k for k in ('loss', 'sema/switch_distance')
             if any(scalar_curve(log, k) for log in logs.values())]
    return keys


def run_labels(work_dirs: Sequence[str]) -> List[str]:
    """The shortest trailing parts of the work dirs' paths that tell them
    apart (``sema/seed0`` and ``ema/seed0`` for the runs of a comparison),
    as the legend's labels."""
    parts = [osp.normpath(osp.abspath(w)).split(osp.sep) for w in work_dirs]
    for n in range(1, max(len(p) for p in parts) + 1):
        labels = ['/'.join(p[-n:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return ['/'.join(p) for p in parts]


def main(argv: Optional[Sequence[str]] = None) -> str:
    args = parse_args(argv)
    logs = {}
    for label, work_dir in zip(run_labels(args.work_dirs), args.work_dirs):
        log = read_run(work_dir)
        if not log.log_dirs:
            raise SystemExit(f'{work_dir} has no vis_data/scalars.json: is '
                             'it an mmengine work dir?')
        logs[label] = log
    keys = args.keys or default_keys(logs)
    missing = [k for k in keys
               if not any(scalar_curve(log, k) for log in logs.values())]
    if missing:
        raise SystemExit(f'not logged by any run: {missing}')
    path = plot_scalars(logs, keys, args.out,
                        logy=('loss', 'sema/switch_distance'))
    print(f'wrote {path} ({", ".join(keys)} of {len(logs)} runs)')
    return path


if __name__ == '__main__':
    main()
