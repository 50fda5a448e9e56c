"""Train a model from an mmdet, mmpretrain, mmselfsup or mmengine config.

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr]
        [--resume [auto|CHECKPOINT]] [--cfg-options KEY=VALUE ...]
        [--launcher {none,pytorch,slurm,mpi}]

The command line and behaviour follow the codebase's own ``tools/train.py``
(chosen by the config's ``default_scope``, see :mod:`sema_mm.cli.codebase`).
Multi-process runs (``tools/dist_train.sh``, ``tools/slurm_train.sh``) use
nccl on GPUs and gloo on CPU-only machines (see :mod:`sema_mm.cli.launch`).
Importing sema_mm registers ``SwitchEMAHook`` and lets checkpoints load with
``weights_only=True``. mmengine's training loops are replaced by the
resumable ones (:mod:`sema_mm.resume`): exact resume, also mid-epoch, and on
SIGTERM / SIGUSR1 a checkpoint, then exit status 86
(:data:`sema_mm.resume.PREEMPTED_EXIT_CODE`).
"""
import argparse

import sema_mm  # noqa: F401
from sema_mm.cli import build_runner, finish_distributed, merge_train_args
from sema_mm.cli.args import add_launch_args, load_config, parse_launch_args
from sema_mm.resume import Preempted


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line of ``tools/train.py``."""
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='enable automatically scaling LR')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or, without a value, from '
        'the latest checkpoint in the work_dir')
    add_launch_args(parser)
    return parse_launch_args(parser, argv)


def main(argv=None) -> None:
    """Train as the config's codebase does."""
    args = parse_args(argv)
    cfg, codebase = load_config(args, merge_train_args)
    runner = build_runner(cfg)
    try:
        runner.train()
    except Preempted as stop:
        finish_distributed(stop.code)
        raise
    finish_distributed()


if __name__ == '__main__':
    main()
