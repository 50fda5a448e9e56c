"""Compare baseline, EMA, SEMA, SWA and Lookahead training on any config.

Every config is trained once per variant and seed, one run after another
(each with ``tools/dist_train.sh`` when ``--gpus`` > 1), then the validation
metric mmengine logged (``vis_data/scalars.json``) is summarised::

    python tools/compare.py CONFIG [CONFIG ...] \\
        [--variants baseline ema sema swa lookahead] [--seeds 0 1 2] \\
        [--work-root work_dirs/compare] [--momentum 1e-3] [--epochs N] \\
        [--metric accuracy/top1] [--gpus N] [--cfg-options KEY=VALUE ...]

A config may be named: ``NAME=path/to/config.py`` (default name: the file
stem). How each variant is applied to a config (EMA-type hooks in
``custom_hooks`` replaced or dropped, SWA's budget, Lookahead's wrapping of
the optimizer) is described in :mod:`sema_mm.analysis.variants`. A variant
takes options after a colon, e.g. ``sema:momentum=0.01,interval=4`` or
``swa:budget=1.0,start=0.8`` or ``lookahead:k=10,alpha=0.8``.

Runs already finished with the same config are skipped, so the command can
be repeated to add seeds or variants, or after an interruption (an
unfinished run resumes from its last checkpoint). Output under
``--work-root``:

* ``<config>/<variant>/seed<s>/``: each run's work dir;
* ``results.md``: per config, a Markdown table (final and best metric as
  mean ± sample std over seeds, the epoch where the mean curve is best, the
  gain of the final mean over the baseline and over EMA, seconds per run);
* ``results.json``: the same numbers and the mean curves;
* ``<config>_<metric>.png``: the metric against the epoch for every variant
  (mean, band of ± one std) and the training loss.

``--report-only`` rebuilds the tables and plots from what is there.
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

from mmengine.config import DictAction

from sema_mm.analysis.compare import Settings, compare
from sema_mm.analysis.variants import parse_variants


def parse_configs(items: Sequence[str]) -> Dict[str, str]:
    """``[NAME=]PATH`` items -> ``{name: path}`` (names must differ)."""
    configs: Dict[str, str] = {}
    for item in items:
        name, eq, path = item.partition('=')
        if not eq:
            path, name = item, osp.splitext(osp.basename(item))[0]
        if not osp.isfile(path):
            raise FileNotFoundError(f'config {path!r} not found')
        if name in configs:
            raise ValueError(f'two configs are named {name!r}; name them '
                             'with NAME=PATH')
        configs[name] = path
    return configs


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description='Train baseline / EMA / SEMA / SWA / Lookahead variants '
        'of configs over seeds and tabulate the logged validation metric.')
    parser.add_argument('configs', nargs='+', metavar='[NAME=]CONFIG',
                        help='config files')
    parser.add_argument(
        '--variants', nargs='+', default=['baseline', 'ema', 'sema'],
        metavar='KIND[:KEY=VALUE,...]',
        help='variants: baseline, ema, sema, swa, lookahead, with options '
        'after a colon (default: baseline ema sema)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2],
                        help='training seeds (default: 0 1 2)')
    parser.add_argument('--work-root', default='work_dirs/compare',
                        help='root of the run folders and the report')
    parser.add_argument(
        '--momentum', type=float, default=None,
        help='EMA/SEMA momentum (mmengine convention: the weight of the new '
        'weights, 1 - alpha); default: the config\'s own EMA-type hook\'s, '
        'else 1e-3')
    parser.add_argument('--epochs', type=int, default=None,
                        help='train this many epochs (LR schedules that '
                        'end with training are stretched)')
    parser.add_argument('--metric', default=None,
                        help='validation metric to compare (default: found '
                        'in the logs, e.g. accuracy/top1, coco/bbox_mAP)')
    parser.add_argument('--rule', choices=['greater', 'less'], default=None,
                        help='whether higher or lower values of the metric '
                        'are better (default: from its name)')
    parser.add_argument('--gpus', type=int, default=1,
                        help='processes per run; > 1 uses '
                        'tools/dist_train.sh')
    parser.add_argument('--subprocess', action='store_true',
                        help='run each single-process run in its own '
                        'process (tools/train.py)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads per run')
    parser.add_argument('--verbose', action='store_true',
                        help='show the runners\' full logs instead of one '
                        'line per validation')
    parser.add_argument('--force', action='store_true',
                        help='train finished runs again')
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing; tabulate what is there')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='overrides merged into every config (KEY=VALUE)')
    args = parser.parse_args(argv)
    if args.gpus < 1:
        parser.error(f'--gpus must be >= 1, got {args.gpus}')
    if args.epochs is not None and args.epochs < 1:
        parser.error(f'--epochs must be >= 1, got {args.epochs}')
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds repeat: {args.seeds}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> List:
    """Run the comparison; print and return the results."""
    args = parse_args(argv)
    configs = parse_configs(args.configs)
    variants = parse_variants(args.variants)
    settings = Settings(
        momentum=args.momentum, epochs=args.epochs,
        cfg_options=args.cfg_options, gpus=args.gpus,
        subprocess=args.subprocess, threads=args.threads,
        quiet=not args.verbose)
    command = ' '.join(['python', 'tools/compare.py'] + list(
        argv if argv is not None else sys.argv[1:]))
    results = compare(
        configs, variants, args.seeds, args.work_root, settings,
        metric=args.metric, rule=args.rule, force=args.force,
        train=not args.report_only, header=f'`{command}`\n')
    for res in results:
        print(f'\n{res.name}: val {res.metric} over seeds {args.seeds}')
        print(res.table)
        if res.plot:
            print(f'plot: {res.plot}')
    print(f'report: {osp.join(args.work_root, "results.md")}')
    return results


if __name__ == '__main__':
    main()
