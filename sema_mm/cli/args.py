"""What ``tools/train.py`` and ``tools/test.py`` share: the launcher
arguments of the upstream command lines (and, under torchrun, ending with
the launcher: :mod:`.parent_death`) and loading the config for its
codebase."""
import argparse
import os
from typing import Callable, Optional, Sequence, Tuple

from mmengine.config import Config, DictAction

from .codebase import Codebase
from .parent_death import end_with_launcher


def add_launch_args(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options``, ``--launcher`` and ``--local-rank`` as upstream."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file (last, after all '
        'other options). If the value to be overwritten is a list, it should '
        'be like key="[a,b]" or key=a,b. It also allows nested list/tuple '
        'values, e.g. key="[(a,b),(c,d)]". Note that the quotation marks are '
        'necessary and that no white space is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local_rank, torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_launch_args(parser: argparse.ArgumentParser,
                      argv: Optional[Sequence[str]] = None
                      ) -> argparse.Namespace:
    """Parse ``argv``; export ``--local-rank`` as ``LOCAL_RANK`` if the
    launcher did not. A process that torchrun started (``--launcher
    pytorch``, ``TORCHELASTIC_RUN_ID`` set) is made to end with torchrun
    (:func:`~.parent_death.end_with_launcher`, Linux only)."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if args.launcher == 'pytorch' and 'TORCHELASTIC_RUN_ID' in os.environ:
        end_with_launcher()
    return args


def load_config(args: argparse.Namespace,
                merge_args: Callable[[Config, argparse.Namespace], Codebase]
                ) -> Tuple[Config, Codebase]:
    """Read ``args.config``, merge the command line into it as its codebase
    does, and check and set up that codebase."""
    cfg = Config.fromfile(args.config)
    codebase = merge_args(cfg, args)
    codebase.require_installed(args.config)
    if codebase.setup is not None:
        codebase.setup()
    return cfg, codebase
