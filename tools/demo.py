"""Baseline vs EMA vs Switch EMA (SEMA) on CPU, in one command.

::

    python tools/demo.py        # what `make demo` runs: 9 runs, minutes

It needs no download:

1. writes scikit-learn's 8x8 digits into ``--data-root`` as an image folder
   (see :mod:`sema_mm.datasets.digits`), by default a small, noisy training
   set: 300 training images, 20 % of them with a wrong label (the 539
   validation images keep their true labels). With few, partly wrong labels
   the network overfits late in training, which is where averaging the
   weights can matter;
2. trains ``configs/demo/resnet_digits_sema.py`` (ResNet-18 with 16 base
   channels, 30 epochs, cosine LR) as three variants (no averaging, EMA
   evaluated and saved, SEMA), all with momentum 0.1 (the config's), with
   seeds 0, 1 and 2, one run after another, through
   :mod:`sema_mm.comparison.runner` (as ``tools/compare.py`` does: one status
   line per run, updated in place on a terminal, a line per start and end
   otherwise; each run's full log in its work dir; finished runs are skipped
   when the command is repeated);
3. prints a table of the validation top-1 accuracy (final and best, mean ±
   std over seeds, gains over the baseline and over EMA) and saves the plot
   of accuracy and training loss against the epoch
   (``<work-dir>/digits_accuracy_top1.png``) and ``results.md``.

Options: ``--seeds``, ``--variants`` (any of baseline, ema, sema, swa,
lookahead, with options as in ``tools/compare.py``), ``--momentum``,
``--epochs``, ``--train-size``, ``--label-noise``, ``--data-seed``,
``--threads``, ``--force`` (train finished runs again), and, as in
``tools/compare.py``, ``--bootstrap N`` (bootstrap intervals of the paired
differences) and ``--sharpness`` (measure the final weights of every run;
``--sharpness-batches``, ``--sharpness-eps``, ``--sharpness-trace``).

``--config CONFIG`` keeps the single-run demo: it trains that one config
(e.g. ``configs/demo/resnet_digits_{baseline,ema,sema}.py``) with seed
``--seed`` in ``--work-dir`` and prints its epoch-by-epoch summary (loss,
LR, switches, validation accuracy, checkpoint). Training uses one CPU thread
unless ``--threads`` says otherwise.
"""
import argparse
import logging
import os.path as osp
import textwrap
import time
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.hooks import EMAHook, Hook
from mmengine.logging import print_log
from mmengine.runner import Runner

from sema_mm import SwitchEMAHook
from sema_mm.comparison.paired_stats import format_interval
from sema_mm.comparison.report_args import (
    add_report_args,
    check_report_args,
    sharpness_options,
)
from sema_mm.comparison.results import read_scalars as read_scalars_file
from sema_mm.comparison.runner import Settings, compare
from sema_mm.comparison.variants import (
    SPLITS,
    parse_variants,
    set_data_root,
    set_epochs,
)
from sema_mm.datasets.digits import make_digits
from sema_mm.resume import use_resumable_loop
from sema_mm.studies.sharpness import markdown_sharpness

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
COMPARED_CONFIG = osp.join(REPO, 'configs', 'demo', 'resnet_digits_sema.py')
DEFAULT_EPOCHS = 30
DEFAULT_TRAIN_SIZE = 300
DEFAULT_LABEL_NOISE = 0.2
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_VARIANTS = ('baseline', 'ema', 'sema')

__all__ = ['SPLITS', 'set_data_root', 'set_epochs', 'build_config', 'main']


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description='Compare no averaging, EMA and Switch EMA on '
        'scikit-learn\'s digits (CPU, no download); with --config, train '
        'one config and summarise the run.')
    parser.add_argument(
        '--epochs', type=int, default=DEFAULT_EPOCHS,
        help='training epochs (one switch at the end of each)')
    parser.add_argument(
        '--work-dir', default='work_dirs/demo',
        help='where runs, logs, the table and the plot go')
    parser.add_argument(
        '--data-root', default='data/digits_demo',
        help='digits image folder, (re)written to match the data options')
    parser.add_argument(
        '--seeds', type=int, nargs='+', default=list(DEFAULT_SEEDS),
        help='training seeds of the comparison')
    parser.add_argument(
        '--variants', nargs='+', default=list(DEFAULT_VARIANTS),
        help='variants compared (see tools/compare.py)')
    parser.add_argument(
        '--momentum', type=float, default=None,
        help='EMA/SEMA momentum (default: the config\'s, 0.1)')
    parser.add_argument(
        '--force', action='store_true',
        help='train finished runs again')
    parser.add_argument(
        '--seed', type=int, default=0,
        help='seed of the single run (--config)')
    parser.add_argument(
        '--data-seed', type=int, default=0,
        help='seed of the train/val split, subset and label noise')
    parser.add_argument(
        '--train-size', type=int, default=DEFAULT_TRAIN_SIZE,
        help='use only this many (class-balanced) training images; 0: all '
        '1258')
    parser.add_argument(
        '--label-noise', type=float, default=DEFAULT_LABEL_NOISE,
        help='fraction of training images given a wrong label')
    parser.add_argument(
        '--threads', type=int, default=1,
        help='CPU threads of torch (default 1: the model is too small for '
        'a second thread to pay off, and on a busy machine threads waiting '
        'for a core slow training down many times)')
    parser.add_argument(
        '--config', default=None,
        help='train only this config (the single-run demo)')
    add_report_args(parser)
    args = parser.parse_args(argv)
    check_report_args(parser, args)
    if args.epochs < 1:
        parser.error(f'--epochs must be >= 1, got {args.epochs}')
    if args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds repeat: {args.seeds}')
    if not args.train_size:
        args.train_size = None
    return args


def write_data(args: argparse.Namespace) -> dict:
    """Write (or find) the digits folder the options ask for."""
    data = make_digits(
        args.data_root,
        train_size=args.train_size,
        label_noise=args.label_noise,
        seed=args.data_seed)
    print_log(
        f'digits: {data["root"]} ({data["num_train"]} train images, '
        f'{data["num_noisy"]} with a wrong label; {data["num_val"]} val '
        f'images){"" if data["written"] else ", already written"}',
        logger='current')
    return data


# ------------------------------------------------------------ comparison
def demo_modifier(args: argparse.Namespace, data: dict):
    """The edit applied to the config of every run of the comparison: the
    data folder, and the data options recorded in the config (so that a
    run on other data is not taken for a finished one)."""

    def modify(cfg: Config) -> None:
        set_data_root(cfg, args.data_root)
        cfg.digits = dict(data['params'])

    return modify


def run_comparison(args: argparse.Namespace) -> list:
    """Train the variants over the seeds; print the table."""
    data = write_data(args)
    variants = parse_variants(args.variants)
    settings = Settings(
        momentum=args.momentum, epochs=args.epochs,
        modify=demo_modifier(args, data), threads=args.threads)
    header = (
        f'digits: {data["num_train"]} training images '
        f'({data["num_noisy"]} with a wrong label), {data["num_val"]} '
        f'validation images; ResNet-18 (16 base channels), {args.epochs} '
        f'epochs; seeds {", ".join(map(str, args.seeds))}')
    start = time.perf_counter()
    results = compare(
        dict(digits=COMPARED_CONFIG), variants, args.seeds, args.work_dir,
        settings, force=args.force, header=header + '\n',
        bootstrap=args.bootstrap, sharpness=sharpness_options(args))
    wall = time.perf_counter() - start
    res = results[0]
    print('\n' + '=' * 78)
    print(textwrap.fill(header, width=78))
    print(f'val top-1 accuracy (%), mean ± std over {len(args.seeds)} '
          'seeds; EMA and SEMA are evaluated on the EMA weights\n')
    print(res.table)
    if res.paired:
        print('\npaired differences of the final top-1 (same seed; '
              'positive: better):')
        for diff in res.paired:
            print('  ' + format_interval(diff))
    if res.sharpness:
        print('\nsharpness of the final weights:\n' +
              markdown_sharpness(res.sharpness))
    print(f'\nplot: {res.plot}')
    print(f'table: {osp.join(args.work_dir, "results.md")}')
    print(f'wall time: {wall:.0f} s')
    print('=' * 78, flush=True)
    return results


# ------------------------------------------------------------ single run
def build_config(args: argparse.Namespace) -> Config:
    """The ``--config`` config with the command-line options applied."""
    cfg = Config.fromfile(args.config)
    cfg.work_dir = args.work_dir
    cfg.launcher = 'none'
    set_data_root(cfg, args.data_root)
    set_epochs(cfg, args.epochs)
    cfg.randomness = dict(seed=args.seed, deterministic=False)
    return cfg


class HookMessages(logging.Handler):
    """Keeps the messages the logger receives from SwitchEMAHook."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith('SwitchEMAHook:'):
            self.messages.append(message)


def read_scalars(path: str) -> Dict[str, Dict[int, dict]]:
    """Training and validation scalars per epoch from a ``scalars.json``.

    Args:
        path (str): The ``vis_data/scalars.json`` of a run.

    Returns:
        dict: ``train`` maps each epoch (from 1) to the last logged training
        line of that epoch (``loss``, ``lr``, ...), ``val`` to its
        validation line (``accuracy/top1`` in percent, ...).
    """
    if not osp.isfile(path):
        return dict(train={}, val={})
    log = read_scalars_file(path)
    return dict(train=log.train, val=log.val)


class SwitchRecorder(Hook):
    """Maps each epoch to the number of the switch at its end, read from
    SwitchEMAHook's counter after the epoch's hooks have run."""
    priority = 'LOWEST'

    def __init__(self) -> None:
        self.switches: Dict[int, int] = {}

    def after_train_epoch(self, runner) -> None:
        hook = next((h for h in runner.hooks
                     if isinstance(h, SwitchEMAHook)), None)
        if hook is not None and hook.num_switches > max(
                self.switches.values(), default=0):
            self.switches[runner.epoch + 1] = hook.num_switches


def describe_averaging(runner: Runner) -> dict:
    """Which weight averaging the runner does: ``kind`` (``'SEMA'``,
    ``'EMA'`` or None) and its ``momentum``."""
    hook = next((h for h in runner.hooks if isinstance(h, EMAHook)), None)
    if hook is None:
        return dict(kind=None, momentum=None)
    return dict(
        kind='SEMA' if isinstance(hook, SwitchEMAHook) else 'EMA',
        momentum=getattr(hook, 'momentum', None)
        or hook.ema_cfg.get('momentum'))


def format_summary(info: dict) -> str:
    """The human-readable summary of a single run."""
    data, rows = info['data'], info['scalars']
    kind, momentum = info['averaging']['kind'], info['averaging']['momentum']
    sema = kind == 'SEMA'
    method = 'no weight averaging'
    if kind is not None:
        method = 'Switch EMA' if sema else 'EMA'
        if momentum is not None:
            method += f', momentum {momentum:g}'
    lines = [
        '',
        '=' * 64,
        f'{info["name"]} ({method}): {info["epochs"]} epochs in '
        f'{info["train_s"]:.0f} s',
        f'  data: {data["num_train"]} training images '
        f'({data["num_noisy"]} with a wrong label), {data["num_val"]} '
        f'validation images in {data["root"]}',
    ]
    lines += [
        textwrap.fill(
            m, width=78, initial_indent='  ', subsequent_indent='    ')
        for m in info['messages']
        if not m.startswith('SwitchEMAHook: switch ')
    ]
    switch_head = f'  {"switch":>11}' if sema else ''
    lines += [
        '',
        f'{"epoch":>5}  {"train loss":>10}  {"lr":>9}{switch_head}  '
        f'{"val top-1 (%)":>13}',
    ]
    for epoch in range(1, info['epochs'] + 1):
        train = rows['train'].get(epoch, {})
        val = rows['val'].get(epoch, {})
        loss = f'{train["loss"]:.4f}' if 'loss' in train else '-'
        lr = f'{train["lr"]:.2e}' if 'lr' in train else '-'
        acc = f'{val["accuracy/top1"]:.2f}' if val else '-'
        switch = ''
        if sema:
            number = info['switches'].get(epoch)
            switch = f'  {f"switch {number}" if number else "-":>11}'
        lines.append(
            f'{epoch:>5}  {loss:>10}  {lr:>9}{switch}  {acc:>13}')
    lines.append('')
    if sema:
        lines.append(
            f'switches: {len(info["switches"])} (the EMA copied into the '
            'model at the end of an epoch, before its validation)')
    if rows['val']:
        best = max(rows['val'], key=lambda e: rows['val'][e]['accuracy/top1'])
        last = max(rows['val'])
        evaluated = '' if kind is None else ' (of the EMA)'
        lines.append(
            f'val top-1{evaluated}: '
            f'{rows["val"][last]["accuracy/top1"]:.2f} % after epoch {last}, '
            f'best {rows["val"][best]["accuracy/top1"]:.2f} % '
            f'(epoch {best})')
    note = '' if kind is None else ' (state_dict: the EMA weights)'
    lines.append(f'checkpoint: {info["checkpoint"]}{note}')
    lines.append(f'logs: {info["log_dir"]}')
    lines.append('=' * 64)
    return '\n'.join(lines)


def run_single(args: argparse.Namespace) -> dict:
    """Train ``--config`` once and print its summary; return it."""
    data = write_data(args)
    cfg = build_config(args)
    use_resumable_loop(cfg)
    runner = Runner.from_cfg(cfg)
    recorder = HookMessages()
    runner.logger.addHandler(recorder)
    switches = SwitchRecorder()
    runner.register_hook(switches)
    start = time.perf_counter()
    try:
        runner.train()
    finally:
        runner.logger.removeHandler(recorder)
    train_s = time.perf_counter() - start

    last = osp.join(runner.work_dir, 'last_checkpoint')
    checkpoint = None
    if osp.isfile(last):
        with open(last) as f:
            checkpoint = f.read().strip()
    info = dict(
        name=osp.splitext(osp.basename(args.config))[0],
        averaging=describe_averaging(runner),
        epochs=args.epochs,
        train_s=train_s,
        data=data,
        messages=recorder.messages,
        switches=switches.switches,
        scalars=read_scalars(
            osp.join(runner.log_dir, 'vis_data', 'scalars.json')),
        checkpoint=checkpoint,
        log_dir=runner.log_dir)
    print(format_summary(info), flush=True)
    return info


def main(argv: Optional[Sequence[str]] = None):
    """Run the comparison, or the single run with ``--config``."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.config is not None:
        return run_single(args)
    return run_comparison(args)


if __name__ == '__main__':
    main()
