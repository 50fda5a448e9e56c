"""Test a checkpoint of an mmdet, mmpretrain, mmselfsup or mmengine config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

Runs the config's ``test_dataloader`` and ``test_evaluator`` on the weights of
``CHECKPOINT`` (a checkpoint saved with ``SwitchEMAHook`` holds the EMA in
its ``state_dict``) and prints the metrics. ``--out`` also dumps the
predictions to a pickle file (mmdet: ``DumpDetResults``, otherwise mmengine's
``DumpResults``). Multi-process runs use nccl on GPUs and gloo on CPU-only
machines (see :mod:`sema_mm.cli.launch`).
"""
import argparse

from mmengine.dist import get_rank
from mmengine.logging import print_log

import sema_mm  # noqa: F401
from sema_mm.cli import build_runner, finish_distributed, merge_test_args
from sema_mm.cli.args import add_launch_args, load_config, parse_launch_args


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line of ``tools/test.py``."""
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    add_launch_args(parser)
    return parse_launch_args(parser, argv)


def main(argv=None) -> dict:
    """Test as the config's codebase does; return the metrics."""
    args = parse_args(argv)
    cfg, codebase = load_config(args, merge_test_args)
    runner = build_runner(cfg)
    if args.out is not None:
        runner.test_evaluator.metrics.append(
            codebase.build_dump_metric(args.out))
    metrics = runner.test()
    if get_rank() == 0:
        print_log(
            'Test metrics: ' + ', '.join(f'{k}: {v}'
                                         for k, v in metrics.items()))
    finish_distributed()
    return metrics


if __name__ == '__main__':
    main()
