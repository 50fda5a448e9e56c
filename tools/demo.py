"""Train a small ResNet with Switch EMA (SEMA) on CPU, in one command.

::

    python tools/demo.py                 # about a minute on two CPU cores
    python tools/demo.py --epochs 5 --work-dir work_dirs/demo_short

It needs no download:

1. writes scikit-learn's 8x8 digits into ``--data-root`` as an image folder
   (skipped when already there; see :mod:`sema_mm.datasets.digits`),
2. trains ``configs/demo/resnet_digits_sema.py`` (ResNet-18 with 16 base
   channels, SwitchEMAHook) with mmengine's ``Runner``, which logs one
   training line, the switch and the validation accuracy per epoch,
3. prints a summary: the EMA pull-back of the chosen momentum, each switch,
   the validation top-1 accuracy per epoch (from the run's
   ``vis_data/scalars.json``) and the checkpoint.

``--train-size`` and ``--label-noise`` write a smaller or noisier training
set instead (into the same ``--data-root``, replacing what is there), and
``--config configs/demo/resnet_digits_{baseline,ema}.py`` trains the same
model without averaging or with a plain EMA, for comparison. Training uses
one CPU thread unless ``--threads`` says otherwise.
"""
import argparse
import json
import logging
import os.path as osp
import textwrap
import time
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.hooks import EMAHook
from mmengine.logging import print_log
from mmengine.runner import Runner

from sema_mm import SwitchEMAHook
from sema_mm.datasets.digits import make_digits

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'demo', 'resnet_digits_sema.py')
DEFAULT_EPOCHS = 30
SPLITS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description='Train a small ResNet with Switch EMA on scikit-learn\'s '
        'digits (CPU, no download) and summarise the run.')
    parser.add_argument(
        '--epochs', type=int, default=DEFAULT_EPOCHS,
        help='training epochs (one switch at the end of each)')
    parser.add_argument(
        '--work-dir', default='work_dirs/demo',
        help='where logs and checkpoints go')
    parser.add_argument(
        '--data-root', default='data/digits',
        help='digits image folder, written if missing')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the training run')
    parser.add_argument(
        '--data-seed', type=int, default=0,
        help='seed of the train/val split, subset and label noise')
    parser.add_argument(
        '--train-size', type=int, default=None,
        help='use only this many (class-balanced) training images')
    parser.add_argument(
        '--label-noise', type=float, default=0.0,
        help='fraction of training images given a wrong label')
    parser.add_argument(
        '--threads', type=int, default=1,
        help='CPU threads of torch (default 1: the model is too small for '
        'a second thread to pay off, and on a busy machine threads waiting '
        'for a core slow training down many times)')
    parser.add_argument(
        '--config', default=DEFAULT_CONFIG, help='config file to train')
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f'--epochs must be >= 1, got {args.epochs}')
    if args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    return args


def set_epochs(cfg: Config, epochs: int) -> None:
    """Train for ``epochs`` epochs, stretching the LR schedule with them.

    Schedulers that end at the config's last epoch are made to end at
    ``epochs``, and a ``T_max`` that spans until then is changed likewise.
    """
    old = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = epochs
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for sched in schedulers:
        if sched.get('end') != old:
            continue
        sched['end'] = epochs
        begin = sched.get('begin', 0)
        if sched.get('T_max') == old - begin:
            sched['T_max'] = epochs - begin


def set_data_root(cfg: Config, data_root: str) -> None:
    """Point the datasets of every dataloader at ``data_root``."""
    cfg.data_root = data_root
    for split in SPLITS:
        if cfg.get(split) is not None:
            cfg[split].dataset.data_root = data_root


def build_config(args: argparse.Namespace) -> Config:
    """The demo config with the command-line options applied."""
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
    rows: Dict[str, Dict[int, dict]] = dict(train={}, val={})
    if not osp.isfile(path):
        return rows
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            if 'epoch' in row and 'loss' in row:
                rows['train'][int(row['epoch'])] = row
            elif 'accuracy/top1' in row:
                rows['val'][int(row['step'])] = row
    return rows


def switch_epochs(messages: Sequence[str]) -> Dict[int, int]:
    """Map each epoch to the number of the switch at its end, from the
    ``'SwitchEMAHook: switch N at the end of epoch E'`` messages."""
    switches = {}
    for message in messages:
        words = message.split()
        if message.startswith('SwitchEMAHook: switch ') and \
                'epoch' in words:
            switches[int(words[-1])] = int(words[2])
    return switches


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
    """The human-readable summary of a demo run."""
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


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Write the data, train the config, print the summary; return it."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = make_digits(
        args.data_root,
        train_size=args.train_size,
        label_noise=args.label_noise,
        seed=args.data_seed)
    cfg = build_config(args)
    runner = Runner.from_cfg(cfg)
    print_log(
        f'digits: {data["root"]} ({data["num_train"]} train images, '
        f'{data["num_noisy"]} with a wrong label; {data["num_val"]} val '
        f'images){"" if data["written"] else ", already written"}',
        logger='current')
    recorder = HookMessages()
    runner.logger.addHandler(recorder)
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
        switches=switch_epochs(recorder.messages),
        scalars=read_scalars(
            osp.join(runner.log_dir, 'vis_data', 'scalars.json')),
        checkpoint=checkpoint,
        log_dir=runner.log_dir)
    print(format_summary(info), flush=True)
    return info


if __name__ == '__main__':
    main()
