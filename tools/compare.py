"""Compare baseline, EMA, SEMA, SWA and Lookahead training on any config.

Every config is trained once per variant and seed, then the validation
metric mmengine logged (``vis_data/scalars.json``) is summarised::

    python tools/compare.py CONFIG [CONFIG ...] \\
        [--variants baseline ema sema swa lookahead] [--seeds 0 1 2] \\
        [--work-root work_dirs/compare] [--momentum 1e-3] [--epochs N] \\
        [--metric accuracy/top1] [--gpus-per-run N] \\
        [--launcher {none,local,slurm}] [--parallel K] \\
        [--partition P] [--cpus-per-task C] [--max-jobs K] [--no-wait] \\
        [--progress {auto,tty,plain}] [--heartbeat MINUTES] \\
        [--bootstrap N] [--sharpness [--sharpness-batches B] \\
        [--sharpness-eps E] [--sharpness-trace S]] \\
        [--cfg-options KEY=VALUE ...]

A config may be named: ``NAME=path/to/config.py`` (default name: the file
stem). How each variant is applied to a config (EMA-type hooks in
``custom_hooks`` replaced or dropped, SWA's budget, Lookahead's wrapping of
the optimizer) is described in :mod:`sema_mm.comparison.variants`. A variant
takes options after a colon, e.g. ``sema:momentum=0.01,interval=4`` or
``swa:budget=1.0,start=0.8`` or ``lookahead:k=10,alpha=0.8``.

Where the runs train (:mod:`sema_mm.comparison.launchers`):

* ``--launcher none`` (default): one after another, in this process, or
  with ``--gpus-per-run N`` > 1 each by ``tools/dist_train.sh`` on all
  visible GPUs;
* ``--launcher local``: several at once on this machine: with ``G`` GPUs,
  ``G / N`` runs at a time, each on its own ``N`` GPUs
  (``CUDA_VISIBLE_DEVICES``) with its own rendezvous port; without GPUs,
  ``--parallel K`` CPU runs at a time;
* ``--launcher slurm --partition P``: every unfinished run is its own slurm
  job (``tools/slurm_train.sh`` with ``N`` tasks), all submitted at once,
  at most ``--max-jobs K`` running at a time. The command waits for them;
  with ``--no-wait`` it exits once they are submitted, and a later call
  (the same command to wait, or ``--report-only``) collects. The jobs are
  requeueable (``--requeue``), their training processes get SIGUSR1 180 s
  before the time limit (``--signal=USR1@180``; another ``--signal`` in
  ``--sbatch-args`` replaces it), and every start of a job, a requeued one
  too, resumes from the run's newest checkpoint.

While runs train, one status line per run shows its state (queued, running,
done, failed), epoch, metric and the time left, updated in place on a
terminal (a line per change of state otherwise, and every ``--heartbeat``
minutes the lines of the running runs); each run's full log stays in its
work dir. A metric in [0, 1] (COCO mAP) is shown with 3 decimals, others
(accuracy in %) with 2. A run that failed is reported with its exception
and its log and started
again by the next call, resuming from its last checkpoint; the command then
exits with status 1 (after writing the tables of the others).

Runs already finished with the same config are skipped, so the command can
be repeated to add seeds or variants, or after an interruption: finished
runs are kept, unfinished ones resume, and jobs still running (slurm, or
local ones of a killed comparison) are waited for, never started twice. One
comparison at a time may train under a ``--work-root``; a second one is
refused with the first one's pid and command. Output under ``--work-root``:

* ``<config>/<variant>/seed<s>/``: each run's work dir;
* ``results.md``: per config, a Markdown table (final and best metric as
  mean ± sample std over seeds, the epoch where the mean curve is best, the
  gain of the final mean over the baseline and over EMA, seconds per run);
  then the paired differences of the final metric, seed by seed, of every
  variant against the baseline and against EMA: mean, sd, 95 % confidence
  interval (Student's t, or a bootstrap with ``--bootstrap N``), the seeds
  a paired test would need for 80 % power at the observed effect size, and
  the seeds left out because a variant lacks them
  (:mod:`sema_mm.comparison.paired_stats`);
* ``results.json``: the same numbers (``paired``: ``mean``, ``sd``,
  ``ci95: [low, high]``, ``differences``, ``seeds_for_80_power``,
  ``unpaired_seeds``, ...) and the mean curves;
* ``<config>_<metric>.png``: the metric against the epoch for every variant
  (mean, band of ± one std) and the training loss;
  ``<config>_<metric>_paired.png``: the per-seed differences with their
  means and intervals.

``--sharpness`` also measures every finished run's final checkpoint on fixed
training batches (largest Hessian eigenvalue, epsilon-sharpness, with
``--sharpness-trace S`` the Hessian trace; see
``tools/analysis/sharpness.py``), keeps the numbers in the run's
``sharpness.json`` (measured once) and adds a table of them, with their
paired differences, to ``results.md`` and ``results.json``
(``sharpness``).

``--report-only`` shows the state of every run and rebuilds the tables and
plots from what is there.
"""
import argparse
import os.path as osp
import shlex
import sys
from typing import Dict, List, Optional, Sequence

from mmengine.config import DictAction

from sema_mm.comparison.jobs import CompareBusyError
from sema_mm.comparison.report_args import (
    add_report_args,
    check_report_args,
    sharpness_options,
)
from sema_mm.comparison.runner import (
    LAUNCHERS,
    RunsFailed,
    Settings,
    compare,
)
from sema_mm.comparison.variants import parse_variants


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
    parser.add_argument('--gpus-per-run', '--gpus', dest='gpus', type=int,
                        default=1,
                        help='GPUs (processes) per run; > 1 uses '
                        'tools/dist_train.sh, or that many slurm tasks')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none',
                        help='none: one run after another; local: several '
                        'at once on this machine; slurm: a job per run')
    parser.add_argument('--parallel', type=int, default=None,
                        help='--launcher local: runs at once at most (on a '
                        'machine without GPUs: CPU runs at once, default 1)')
    parser.add_argument('--partition', help='--launcher slurm: partition')
    parser.add_argument('--max-jobs', type=int, default=None,
                        help='--launcher slurm: jobs running at once at '
                        'most (default: all)')
    parser.add_argument('--gpus-per-node', type=int, default=8,
                        help='--launcher slurm: GPUs per node (default 8)')
    parser.add_argument('--cpus-per-task', type=int, default=None,
                        help='--launcher slurm: CPUs per task (default: '
                        '$CPUS_PER_TASK, else 5 or what the partition\'s '
                        'nodes have per GPU task if fewer)')
    parser.add_argument('--sbatch-args', default='',
                        help='--launcher slurm: more sbatch options, e.g. '
                        '"--time=2-0 --qos=normal"')
    parser.add_argument('--no-wait', action='store_true',
                        help='--launcher slurm: submit and exit; a later '
                        'call (or --report-only) collects')
    parser.add_argument('--poll', type=float, default=None,
                        help='seconds between looks at running jobs '
                        '(default: 10 on slurm, 1 otherwise)')
    parser.add_argument('--progress', choices=['auto', 'tty', 'plain'],
                        default='auto',
                        help='status lines updated in place (tty), a line '
                        'per change of state (plain), or tty on a terminal '
                        '(auto)')
    parser.add_argument('--heartbeat', type=float, default=10.0,
                        metavar='MINUTES',
                        help='plain progress: print the running runs\' '
                        'lines again after this many minutes without '
                        'output (default: 10; 0: never)')
    parser.add_argument('--subprocess', action='store_true',
                        help='run each single-process run in its own '
                        'process (tools/train.py)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads per run')
    parser.add_argument('--verbose', action='store_true',
                        help='show the full logs of runs trained in this '
                        'process instead of their status lines')
    parser.add_argument('--force', action='store_true',
                        help='train finished runs again')
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing; tabulate what is there')
    add_report_args(parser)
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='overrides merged into every config (KEY=VALUE)')
    args = parser.parse_args(argv)
    for name in ('gpus', 'parallel', 'max_jobs', 'gpus_per_node',
                 'cpus_per_task'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got '
                         f'{value}')
    if args.launcher == 'slurm' and not args.partition and \
            not args.report_only:
        parser.error('--launcher slurm needs --partition')
    if args.no_wait and args.launcher != 'slurm':
        parser.error('--no-wait goes with --launcher slurm')
    if args.epochs is not None and args.epochs < 1:
        parser.error(f'--epochs must be >= 1, got {args.epochs}')
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds repeat: {args.seeds}')
    if args.heartbeat < 0:
        parser.error(f'--heartbeat must be >= 0, got {args.heartbeat}')
    try:
        parse_variants(args.variants)
    except ValueError as e:
        parser.error(f'--variants: {e}')
    check_report_args(parser, args)
    return args


def print_results(results: Sequence, seeds: Sequence[int]) -> None:
    """Print each config's table and plot."""
    for res in results:
        print(f'\n{res.name}: val {res.metric} over seeds {list(seeds)}')
        print(res.table)
        if res.plot:
            print(f'plot: {res.plot}')


def main(argv: Optional[Sequence[str]] = None) -> List:
    """Run the comparison; print and return the results."""
    args = parse_args(argv)
    configs = parse_configs(args.configs)
    variants = parse_variants(args.variants)
    settings = Settings(
        momentum=args.momentum, epochs=args.epochs,
        cfg_options=args.cfg_options, gpus=args.gpus,
        subprocess=args.subprocess, threads=args.threads,
        quiet=not args.verbose, launcher=args.launcher,
        parallel=args.parallel, partition=args.partition,
        max_jobs=args.max_jobs, gpus_per_node=args.gpus_per_node,
        cpus_per_task=args.cpus_per_task,
        sbatch_args=shlex.split(args.sbatch_args), wait=not args.no_wait,
        poll_s=args.poll, progress=args.progress,
        heartbeat_s=args.heartbeat * 60 if args.heartbeat else None)
    command = ' '.join(['python', 'tools/compare.py'] + list(
        argv if argv is not None else sys.argv[1:]))
    try:
        results = compare(
            configs, variants, args.seeds, args.work_root, settings,
            metric=args.metric, rule=args.rule, force=args.force,
            train=not args.report_only, header=f'`{command}`\n',
            command=command, bootstrap=args.bootstrap,
            sharpness=sharpness_options(args))
    except CompareBusyError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: said what goes on
        sys.exit(130)
    except RunsFailed as e:
        print_results(e.results, args.seeds)
        print(f'\nerror: {e}', file=sys.stderr)
        sys.exit(1)
    except KeyError as e:
        if not args.report_only:
            raise
        print(f'no table yet: {e.args[0]}')  # nothing logged yet
        return []
    print_results(results, args.seeds)
    if results:
        print(f'report: {osp.join(args.work_root, "results.md")}')
    return results


if __name__ == '__main__':
    main()
