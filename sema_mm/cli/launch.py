"""Build the mmengine Runner for a launcher, on GPUs or on CPU only.

On a machine with an accelerator nothing here changes mmengine: the Runner
calls ``init_dist(launcher, **env_cfg.dist_cfg)`` (``nccl`` on GPUs) and
wraps the model in ``MMDistributedDataParallel(device_ids=[LOCAL_RANK])``,
exactly as with the upstream ``tools/train.py``.

When :func:`mmengine.device.get_device` is ``'cpu'`` (no GPU, or
``CUDA_VISIBLE_DEVICES=''``), mmengine 0.10.7 cannot train with more than one
process. Two workarounds, neither of which patches mmengine:

1. ``init_dist`` calls ``torch.cuda.set_device(local_rank)`` for the
   ``pytorch``, ``slurm`` and ``mpi`` launchers, which raises without CUDA,
   and OpenMMLab configs ask for ``dist_cfg=dict(backend='nccl')``, which
   needs GPUs. :func:`init_cpu_process_group` initialises the default
   process group itself, with ``gloo``, from the environment variables that
   mmengine reads for each launcher. ``Runner.setup_env`` only calls
   ``init_dist`` when no process group exists yet, so it then leaves it be.
2. ``Runner.wrap_model`` gives the DDP wrapper
   ``device_ids=[int(os.environ['LOCAL_RANK'])]``, which torch refuses for a
   module on the CPU. With ``model_wrapper_cfg`` set, mmengine passes
   ``device_ids`` only as a *default* argument and the config's own value
   wins, so :func:`cpu_model_wrapper_cfg` sets ``model_wrapper_cfg`` with
   ``device_ids=None`` (and, when the config had none, the
   ``broadcast_buffers=False`` and ``find_unused_parameters`` mmengine's
   default wrapper gets).

The rest of that path needs no change: :mod:`mmengine.dist` chooses the
communication device from the backend (CPU tensors for ``gloo``), and the
other ``torch.cuda`` calls of the Runner, its hooks and the logger are
guarded by ``torch.cuda.is_available()`` or are no-ops without CUDA.

3. With ``runner_type='FlexibleRunner'`` the model is wrapped by the
   ``strategy``: :func:`cpu_strategy_cfg` gives ``DDPStrategy`` the same
   ``device_ids=None``; ``FSDPStrategy`` passes ``device_id=LOCAL_RANK`` to
   FSDP1, which would then move the parameters to ``cuda:N``, so its
   ``model_wrapper`` gets ``device_id='cpu'``; and a ``'full'`` state dict is
   gathered without ``offload_to_cpu`` (already on the host; with it, FSDP's
   state-dict clone crashed rank 0 on the CPU with torch 2.13).

Not covered on CPU: ``SyncBatchNorm`` (``sync_bn`` or ``norm_cfg=dict(
type='SyncBN')``) with more than one process, which torch only implements on
accelerators; use ``BN`` for CPU runs.
"""
import copy
import datetime
import logging
import os
import shutil
import subprocess
import sys
from typing import Dict, Optional, Tuple, Union

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict
from mmengine.device import get_device
from mmengine.dist import is_distributed
from mmengine.logging import print_log
from mmengine.registry import MODEL_WRAPPERS, RUNNERS, STRATEGIES
from mmengine.runner import Runner
from mmengine.utils import digit_version
from torch.nn.parallel import DistributedDataParallel

from ..resume import use_resumable_loop
from .resume import resolve_auto_resume

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
CPU_BACKENDS = ('gloo', 'mpi')


def _require_env(launcher: str, *names: str) -> None:
    """Fail clearly when a launcher's environment variable is missing."""
    missing = [name for name in names if name not in os.environ]
    if missing:
        hint = {
            'pytorch': 'start it with torchrun, e.g. tools/dist_train.sh',
            'slurm': 'start it with srun, e.g. tools/slurm_train.sh',
            'mpi': 'start it with mpirun (Open MPI)',
        }[launcher]
        raise RuntimeError(
            f'--launcher {launcher} needs the environment variables '
            f'{", ".join(missing)}: {hint}.')


def _slurm_master_addr(node_list: str) -> str:
    """The first host of ``SLURM_NODELIST`` (``scontrol show hostnames``,
    as mmengine finds it).

    Only a successful ``scontrol`` that prints a host is believed: an
    unconfigured one (installed, but no ``slurm.conf`` or controller)
    prints an error instead, which must not become the rendezvous address.
    Without a usable ``scontrol`` a plain single host name is taken as it
    is.

    Raises:
        RuntimeError: When a node list like ``node[1-4]`` cannot be
            expanded; the message says why and to set ``MASTER_ADDR``.
    """
    why = '`scontrol` is not installed'
    if shutil.which('scontrol'):
        try:
            proc = subprocess.run(
                ['scontrol', 'show', 'hostnames', node_list],
                capture_output=True, text=True, timeout=60)
            hosts = proc.stdout.split()
            if proc.returncode == 0 and hosts:
                return hosts[0]
            why = (f'`scontrol show hostnames` failed: '
                   f'{(proc.stderr or proc.stdout).strip()}')
        except (OSError, subprocess.TimeoutExpired) as e:
            why = f'`scontrol` failed: {e}'
    if node_list and not any(c in node_list for c in '[],'):
        return node_list  # a single plain host name
    raise RuntimeError(
        f'Cannot expand SLURM_NODELIST={node_list!r} ({why}); set '
        'MASTER_ADDR.')


def set_launcher_env(launcher: str, port: Optional[int] = None) -> None:
    """Set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
    ``MASTER_PORT`` from a launcher's own variables, as mmengine's
    ``init_dist`` does for it.

    Args:
        launcher (str): ``'pytorch'`` (torchrun sets them all), ``'slurm'``
            or ``'mpi'``.
        port (int, optional): Master port for slurm
            (``env_cfg.dist_cfg.port``); else ``MASTER_PORT``, else 29500.
    """
    if launcher == 'pytorch':
        _require_env(launcher, 'RANK', 'WORLD_SIZE', 'MASTER_ADDR',
                     'MASTER_PORT')
        os.environ.setdefault('LOCAL_RANK', '0')
    elif launcher == 'slurm':
        _require_env(launcher, 'SLURM_PROCID', 'SLURM_NTASKS',
                     'SLURM_NODELIST')
        proc_id = os.environ['SLURM_PROCID']
        if port is not None:
            os.environ['MASTER_PORT'] = str(port)
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            os.environ['MASTER_ADDR'] = _slurm_master_addr(
                os.environ['SLURM_NODELIST'])
        os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
        os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
        os.environ['RANK'] = proc_id
    elif launcher == 'mpi':
        _require_env(launcher, 'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE',
                     'OMPI_COMM_WORLD_LOCAL_RANK', 'MASTER_ADDR')
        os.environ.setdefault('MASTER_PORT', '29500')
        os.environ['WORLD_SIZE'] = os.environ['OMPI_COMM_WORLD_SIZE']
        os.environ['RANK'] = os.environ['OMPI_COMM_WORLD_RANK']
        os.environ['LOCAL_RANK'] = os.environ['OMPI_COMM_WORLD_LOCAL_RANK']
    else:
        raise ValueError(f'launcher must be one of {LAUNCHERS[1:]}, got '
                         f'{launcher!r}')


def init_cpu_process_group(launcher: str,
                           backend: str = 'gloo',
                           init_backend: str = 'torch',
                           port: Optional[int] = None,
                           timeout: Optional[float] = None,
                           **kwargs) -> str:
    """Initialise the default process group for CPU-only processes.

    Takes ``env_cfg.dist_cfg`` as keyword arguments, like mmengine's
    ``init_dist``. A GPU backend (``nccl``, the OpenMMLab default) is
    replaced with ``gloo``; ``gloo`` and ``mpi`` are kept.

    Args:
        launcher (str): ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        backend (str): Backend asked for by the config.
        init_backend (str): Only ``'torch'`` is supported on CPU.
        port (int, optional): Master port for slurm.
        timeout (float, optional): Timeout in seconds.
        **kwargs: Passed to :func:`torch.distributed.init_process_group`.

    Returns:
        str: The backend used.
    """
    if init_backend != 'torch':
        raise ValueError(
            f"init_backend={init_backend!r} is not supported without an "
            "accelerator; use dist_cfg=dict(init_backend='torch').")
    set_launcher_env(launcher, port)
    if backend not in CPU_BACKENDS:
        backend = 'gloo'
    if timeout is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=timeout)
    torch_dist.init_process_group(
        backend=backend,
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs)
    return backend


def _wrapper_is_ddp(wrapper_type: Union[str, type],
                    scope: Optional[str]) -> bool:
    """Whether a model wrapper type is a DistributedDataParallel, i.e. one
    that mmengine gives ``device_ids``."""
    if isinstance(wrapper_type, str):
        with MODEL_WRAPPERS.switch_scope_and_registry(scope) as registry:
            wrapper_type = registry.get(wrapper_type)
    return isinstance(wrapper_type, type) and issubclass(
        wrapper_type, DistributedDataParallel)


def cpu_model_wrapper_cfg(cfg: Config) -> Dict:
    """``model_wrapper_cfg`` for ``cfg`` with ``device_ids=None`` for DDP.

    Args:
        cfg (Config): The full config.

    Returns:
        dict: mmengine's default wrapper (``MMDistributedDataParallel`` with
        ``broadcast_buffers=False`` and the config's
        ``find_unused_parameters``) when the config sets none; otherwise the
        config's, with ``device_ids=None`` added when it is a DDP and sets no
        ``device_ids`` itself.
    """
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        return ConfigDict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper = ConfigDict(wrapper)
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    if 'device_ids' not in wrapper and _wrapper_is_ddp(
            wrapper['type'], cfg.get('default_scope')):
        wrapper['device_ids'] = None
    return wrapper


def _strategy_class(strategy_type: Union[str, type]) -> Optional[type]:
    """The class a strategy config names, or None if unknown."""
    if isinstance(strategy_type, str):
        return STRATEGIES.get(strategy_type)
    return strategy_type if isinstance(strategy_type, type) else None


def cpu_strategy_cfg(strategy: Dict) -> Dict:
    """``strategy`` (a ``FlexibleRunner`` strategy config) made to run on
    CPU processes (see the module docstring, item 3).

    Args:
        strategy (dict): The config's ``strategy``.

    Returns:
        dict: A copy; ``model_wrapper`` with ``device_ids=None`` for
        ``DDPStrategy``, ``device_id='cpu'`` for ``FSDPStrategy`` (and
        ``'full'`` state dicts without CPU offload); unchanged for others.
        Values the config sets itself are kept.
    """
    from mmengine._strategy import DDPStrategy, FSDPStrategy
    strategy = ConfigDict(copy.deepcopy(strategy))
    cls = _strategy_class(strategy.get('type'))
    if not isinstance(cls, type) or not issubclass(cls, DDPStrategy):
        return strategy
    wrapper = ConfigDict(strategy.get('model_wrapper') or {})
    if issubclass(cls, FSDPStrategy):
        if digit_version(torch.__version__) < digit_version('2.1.0'):
            raise ValueError(
                'FSDPStrategy on CPU processes needs torch >= 2.1 (FSDP of '
                f'torch {torch.__version__} computes on CUDA only). Run it '
                'on GPUs, or use DDPStrategy on the CPU.')
        wrapper.setdefault('type', 'MMFullyShardedDataParallel')
        wrapper.setdefault('device_id', 'cpu')
        if strategy.get('state_dict_cfg') == 'full':
            strategy.state_dict_cfg = dict(
                state_dict_type='FULL_STATE_DICT',
                state_dict_config=dict(
                    type='FullStateDictConfig', rank0_only=True,
                    offload_to_cpu=False),
                optim_state_dict_config=dict(
                    type='FullOptimStateDictConfig', rank0_only=True,
                    offload_to_cpu=False))
    else:
        wrapper.setdefault('type', 'MMDistributedDataParallel')
        if _wrapper_is_ddp(wrapper['type'], None):
            wrapper.setdefault('device_ids', None)
            wrapper.setdefault('broadcast_buffers', False)
    strategy.model_wrapper = wrapper
    return strategy


def setup_distributed(cfg: Config) -> Tuple[Optional[str], str]:
    """Prepare ``cfg.launcher`` to run on this machine.

    Does nothing for ``launcher='none'`` or on an accelerator (mmengine's
    ``init_dist`` then runs as upstream). On CPU it initialises the process
    group with ``gloo`` and sets ``cfg.model_wrapper_cfg`` (see the module
    docstring).

    Args:
        cfg (Config): The full config; ``model_wrapper_cfg`` may be set.

    Returns:
        tuple[str | None, str]: The backend this function initialised (None
        when it left that to mmengine) and the device.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher not in LAUNCHERS:
        raise ValueError(
            f'launcher must be one of {LAUNCHERS}, got {launcher!r}')
    device = get_device()
    if launcher == 'none':
        return None, device
    if device != 'cpu':
        if launcher == 'pytorch':
            _require_env(launcher, 'RANK', 'WORLD_SIZE', 'LOCAL_RANK')
        elif launcher == 'slurm' and 'MASTER_ADDR' not in os.environ \
                and 'SLURM_NODELIST' in os.environ:
            # mmengine would take whatever `scontrol` prints, errors too.
            os.environ['MASTER_ADDR'] = _slurm_master_addr(
                os.environ['SLURM_NODELIST'])
        return None, device
    backend = None
    if not is_distributed():
        env_cfg = cfg.get('env_cfg') or {}
        dist_cfg = dict(env_cfg.get('dist_cfg') or {})
        asked = dist_cfg.get('backend', 'nccl')
        backend = init_cpu_process_group(launcher, **dist_cfg)
        if torch_dist.get_rank() == 0:
            print_log(
                f'No accelerator: world size {torch_dist.get_world_size()} '
                f'on the CPU, {backend} backend' +
                (f' (instead of {asked})' if asked != backend else '') + '.',
                logger='current')
    cfg.model_wrapper_cfg = cpu_model_wrapper_cfg(cfg)
    if cfg.get('strategy') is not None:
        cfg.strategy = cpu_strategy_cfg(cfg.strategy)
    return backend, device


def build_runner(cfg: Config) -> Runner:
    """Build the Runner of ``cfg`` (``runner_type`` if set) after
    :func:`setup_distributed`, resolving ``--resume auto`` crash-safely
    (:func:`~sema_mm.cli.resume.resolve_auto_resume`), with mmengine's
    training loop replaced by the resumable one
    (:func:`~sema_mm.resume.use_resumable_loop`)."""
    setup_distributed(cfg)
    use_resumable_loop(cfg)
    resolve_auto_resume(cfg)
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def finish_distributed(exit_code: int = 0) -> None:
    """After a successful run (or a preempted one, ``exit_code``
    :data:`~sema_mm.resume.PREEMPTED_EXIT_CODE`): leave the process group
    together (a barrier, then destroy it) and, with gloo, end the process
    at once with ``exit_code``.

    A gloo rank that exits while another still tears its communication
    threads down can abort the other ("terminate called without an active
    exception", SIGABRT, so the launcher reports a failed run), and with
    torch 2.13 this happened now and then even after the barrier and the
    destroy, at interpreter exit. With gloo the process therefore flushes
    its logs and output and leaves with ``os._exit(exit_code)``, skipping the
    interpreter's teardown; nccl runs exit normally."""
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    gloo = torch_dist.get_backend() == 'gloo'
    torch_dist.barrier()
    torch_dist.destroy_process_group()
    if gloo:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_code)
