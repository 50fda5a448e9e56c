"""The report options ``tools/compare.py`` and ``tools/demo.py`` share:
``--bootstrap`` (intervals of the paired differences, see
:mod:`sema_mm.comparison.paired_stats`) and ``--sharpness`` with its
settings (see :mod:`sema_mm.studies.sharpness`)."""
import argparse
from typing import Optional

from ..studies.sharpness import SharpnessOptions


def add_report_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--bootstrap`` and the ``--sharpness*`` options."""
    parser.add_argument(
        '--bootstrap', type=int, default=0, metavar='N',
        help='bootstrap intervals of the paired differences with N '
        'resamples (default: Student\'s t)')
    parser.add_argument(
        '--sharpness', action='store_true',
        help='measure the sharpness of each finished run\'s final '
        'checkpoint (largest Hessian eigenvalue, epsilon-sharpness) and add '
        'it to the report')
    parser.add_argument(
        '--sharpness-batches', type=int, default=4,
        help='fixed training batches the sharpness is measured on '
        '(default 4)')
    parser.add_argument(
        '--sharpness-eps', type=float, default=1e-3,
        help='epsilon-sharpness radius relative to ||w|| (default 1e-3)')
    parser.add_argument(
        '--sharpness-trace', type=int, default=0, metavar='S',
        help='also estimate the Hessian trace with S Hutchinson samples '
        '(default: no)')


def check_report_args(parser: argparse.ArgumentParser,
                      args: argparse.Namespace) -> None:
    """Refuse bad values of the report options."""
    if args.bootstrap < 0 or args.sharpness_batches < 1 or \
            args.sharpness_eps <= 0 or args.sharpness_trace < 0:
        parser.error('--bootstrap and --sharpness-trace must be >= 0, '
                     '--sharpness-batches >= 1 and --sharpness-eps > 0')


def sharpness_options(
        args: argparse.Namespace) -> Optional[SharpnessOptions]:
    """What ``--sharpness`` asks to measure, or None without it."""
    if not args.sharpness:
        return None
    return SharpnessOptions(batches=args.sharpness_batches,
                            eps=args.sharpness_eps,
                            trace_samples=args.sharpness_trace)
