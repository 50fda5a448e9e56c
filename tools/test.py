"""Test a checkpoint of an mmdet, mmpretrain, mmselfsup or mmengine config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--out-item {metrics,pred}] [--show] [--show-dir DIR]
        [--wait-time S] [--interval N] [--tta] [--amp] [--no-pin-memory]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

Runs the config's ``test_dataloader`` and ``test_evaluator`` on the weights of
``CHECKPOINT`` (a checkpoint saved with ``SwitchEMAHook`` holds the EMA in
its ``state_dict``) and prints the metrics. ``--out`` also dumps the
predictions to a pickle file (mmdet: ``DumpDetResults``, otherwise mmengine's
``DumpResults``), or with ``--out-item metrics`` the metrics. The options of
mmdet's and mmpretrain's own ``tools/test.py`` (visualization, TTA, ...) work
for configs of that codebase (see :mod:`sema_mm.cli.test_options`).
Multi-process runs use nccl on GPUs and gloo on CPU-only
machines (see :mod:`sema_mm.cli.launch`).
"""
import argparse

import mmengine
from mmengine.dist import get_rank
from mmengine.logging import print_log

import sema_mm  # noqa: F401
from sema_mm.cli import build_runner, finish_distributed, merge_test_args
from sema_mm.cli.args import add_launch_args, load_config, parse_launch_args
from sema_mm.cli.test_options import add_test_view_args, merge_test_view_args


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
    add_test_view_args(parser)
    add_launch_args(parser)
    return parse_launch_args(parser, argv)


def main(argv=None) -> dict:
    """Test as the config's codebase does; return the metrics."""
    args = parse_args(argv)
    cfg, codebase = load_config(args, merge_test_args)
    merge_test_view_args(cfg, args, codebase)
    runner = build_runner(cfg)
    if args.out is not None and args.out_item != 'metrics':
        runner.test_evaluator.metrics.append(
            codebase.build_dump_metric(args.out))
    metrics = runner.test()
    if args.out is not None and args.out_item == 'metrics' and \
            get_rank() == 0:
        mmengine.dump(metrics, args.out)
    if get_rank() == 0:
        print_log(
            'Test metrics: ' + ', '.join(f'{k}: {v}'
                                         for k, v in metrics.items()))
    finish_distributed()
    return metrics


if __name__ == '__main__':
    main()
