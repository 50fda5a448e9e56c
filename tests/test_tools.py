"""Tests of ``tools/``: train.py, test.py and the dist / slurm scripts.

Everything runs the real scripts in subprocesses with mmengine's Runner on
the toy model of :mod:`tests.toy` (a CPU, a few seconds per run). The
multi-process tests start two gloo processes; ``CUDA_VISIBLE_DEVICES=''``
keeps them on the CPU path on any machine. The command lines the slurm
scripts give ``srun`` are checked with a fake ``srun`` that records its
arguments; the scripts run under a real slurm in tests/test_slurm.py.
"""
import argparse
import copy
import importlib.util
import os
import os.path as osp
import pickle
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from mmengine.config import Config

from sema_mm.cli import (
    CODEBASES,
    cpu_model_wrapper_cfg,
    get_codebase,
    merge_test_args,
    merge_train_args,
)
from tests.toy import toy_config

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / 'tools'
CONFIG_NAME = 'toy_sema.py'
# Variables of an enclosing launcher that must not leak into the runs.
LAUNCH_VARS = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE',
               'MASTER_ADDR', 'MASTER_PORT', 'GROUP_RANK', 'TORCHELASTIC')


def free_port() -> int:
    """A TCP port that is free right now."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_env(**extra: str) -> Dict[str, str]:
    """The environment of a tool run: this venv's python first on PATH, the
    repository on PYTHONPATH, no GPU, no launcher variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(LAUNCH_VARS + ('SLURM_', 'OMPI_'))
    }
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env['PATH']
    env['PYTHONPATH'] = str(REPO)
    env['CUDA_VISIBLE_DEVICES'] = ''
    env.update(extra)
    return env


def run(cmd: List[str], cwd: Path, timeout: int = 120,
        **env: str) -> subprocess.CompletedProcess:
    """Run ``cmd``; fail the test with its output if it fails."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=run_env(**env), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=timeout)
    assert proc.returncode == 0, f'{cmd} failed:\n{proc.stdout[-6000:]}'
    return proc


def write_config(directory: Path, **overrides) -> Path:
    """Write the toy SEMA config (2 epochs, a test split, the rank probe)
    as a config file without ``work_dir``."""
    cfg = toy_config(work_dir='unused')
    del cfg['work_dir']
    cfg['train_cfg'] = dict(cfg['train_cfg'], max_epochs=2)
    cfg['test_dataloader'] = copy.deepcopy(cfg['val_dataloader'])
    cfg['test_evaluator'] = copy.deepcopy(cfg['val_evaluator'])
    cfg['test_cfg'] = dict()
    cfg['custom_hooks'] = [
        dict(type='SwitchEMAHook', momentum=0.2),
        dict(type='RankProbeHook')
    ]
    cfg['custom_imports'] = dict(
        imports=['tests.toy', 'tests.rank_probe'], allow_failed_imports=False)
    cfg.update(overrides)
    path = directory / CONFIG_NAME
    path.write_text(''.join(f'{k} = {v!r}\n' for k, v in cfg.items()))
    return path


def probe(work_dir: Path, rank: int, epoch: int) -> dict:
    """What :class:`tests.rank_probe.RankProbeHook` saved."""
    return torch.load(work_dir / f'rank{rank}_epoch{epoch}.pth')


def load_ckpt(path: Path) -> dict:
    """A checkpoint written by the Runner, loaded as sema_mm loads it (no
    code runs, on every supported torch)."""
    from sema_mm.compat.checkpoint_safety import load_from_local_safe
    return load_from_local_safe(str(path), map_location='cpu')


def assert_same_tensors(a: Dict, b: Dict, names=None) -> None:
    """``a`` and ``b`` hold bit-identical tensors (under ``names``)."""
    if names is None:
        assert sorted(a) == sorted(b)
        names = sorted(a)
    different = [n for n in names if not torch.equal(a[n], b[n])]
    assert not different, f'not bit-identical: {different}'


def metric_of(output: str) -> float:
    """The accuracy that ``tools/test.py`` printed."""
    found = re.findall(r'Test metrics: .*accuracy: ([0-9.]+)', output)
    assert found, output[-3000:]
    return float(found[-1])


def load_tool(name: str):
    """Import ``tools/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f'tool_{name}',
                                                  TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def trained(tmp_path_factory) -> Path:
    """``python tools/train.py toy_sema.py`` run in a fresh directory with
    the bare config file name, i.e. into the default work dir."""
    root = tmp_path_factory.mktemp('train')
    write_config(root)
    run([sys.executable, str(TOOLS / 'train.py'), CONFIG_NAME], cwd=root)
    return root / 'work_dirs' / 'toy_sema'


# --------------------------------------------------------- single process
def test_train_writes_checkpoints_with_ema(trained):
    assert (trained / 'epoch_1.pth').is_file()
    assert (trained / 'epoch_2.pth').is_file()
    assert (trained / 'last_checkpoint').read_text().strip().endswith(
        'epoch_2.pth')
    ckpt = load_ckpt(trained / 'epoch_2.pth')
    assert ckpt['meta']['epoch'] == 2 and ckpt['meta']['iter'] == 16
    assert 'ema_state_dict' in ckpt
    for epoch in (1, 2):
        state = probe(trained, 0, epoch)
        assert state['num_switches'] == epoch
        assert state['world_size'] == 1
        assert state['wrapper'] == 'ToyClassifier'  # not wrapped: no DDP
        # right after a switch, the model holds the EMA
        for name, p in state['model'].items():
            if name.endswith(('weight', 'bias')):
                assert torch.equal(p, state['ema']['module.' + name]), name


def resume_damaged_copy(trained: Path, tmp_path: Path, damage) -> str:
    """Copy the run ``trained`` into ``tmp_path / 'work_dir'``, call
    ``damage(work_dir)`` on the copy, train it on with ``--resume`` (auto),
    check that its epoch 2 is bit-identical to the original's, weights and
    EMA, and return the output."""
    work_dir = tmp_path / 'work_dir'
    shutil.copytree(trained, work_dir)
    damage(work_dir)
    config = write_config(tmp_path)
    out = run([
        sys.executable,
        str(TOOLS / 'train.py'),
        str(config), '--work-dir',
        str(work_dir), '--resume', '--cfg-options', 'log_level=INFO'
    ], cwd=tmp_path).stdout
    new = load_ckpt(work_dir / 'epoch_2.pth')
    old = load_ckpt(trained / 'epoch_2.pth')
    assert_same_tensors(new['state_dict'], old['state_dict'])
    assert_same_tensors(new['ema_state_dict'], old['ema_state_dict'])
    return out


def test_resume_auto_continues_bit_exactly(trained, tmp_path):
    """Interrupt after epoch 1 (drop epoch 2), ``--resume``: epoch 2 comes
    back bit-identical, weights and EMA."""

    def drop_epoch_2(work_dir: Path) -> None:
        (work_dir / 'epoch_2.pth').unlink()
        (work_dir / 'last_checkpoint').write_text(
            str(work_dir / 'epoch_1.pth'))

    out = resume_damaged_copy(trained, tmp_path, drop_epoch_2)
    assert 'resumed epoch: 1, iter: 8' in out
    assert 'Epoch(train) [1]' not in out  # epoch 1 was not trained again


def test_resume_skips_a_cut_checkpoint(trained, tmp_path):
    """``last_checkpoint`` names a checkpoint cut in half (as a partial copy
    leaves it): ``--resume`` says which file it skips and why, resumes from
    the newest readable one (epoch 1) and ends bit-identical to the
    uninterrupted run."""
    work_dir = tmp_path / 'work_dir'
    cut = work_dir / 'epoch_2.pth'

    def cut_epoch_2(work_dir: Path) -> None:
        data = cut.read_bytes()
        cut.write_bytes(data[:len(data) // 2])
        (work_dir / 'last_checkpoint').write_text(str(cut))

    out = resume_damaged_copy(trained, tmp_path, cut_epoch_2)
    assert f'--resume: skipping the checkpoint {cut}: it is cut short' in out
    assert f'resuming from {work_dir / "epoch_1.pth"}, the newest readable' \
        in out
    assert 'resumed epoch: 1, iter: 8' in out


def test_test_py_evaluates_checkpoint(trained, tmp_path):
    """tools/test.py on the last checkpoint reproduces the validation of the
    last epoch, and ``--out`` dumps the predictions."""
    config = write_config(tmp_path)
    preds = tmp_path / 'preds.pkl'
    out = run([
        sys.executable,
        str(TOOLS / 'test.py'),
        str(config),
        str(trained / 'epoch_2.pth'), '--work-dir',
        str(tmp_path / 'test'), '--out',
        str(preds)
    ], cwd=tmp_path).stdout
    accuracy = metric_of(out)
    scalars = next(trained.glob('*/vis_data/scalars.json')).read_text()
    val = [
        float(m) for m in re.findall(r'"toy/accuracy": ([0-9.]+)', scalars)
    ]
    assert len(val) == 2 and accuracy == pytest.approx(val[-1])
    with open(preds, 'rb') as f:
        assert len(pickle.load(f)) == 32


def test_cfg_options_are_merged_last(tmp_path, monkeypatch):
    """``--cfg-options`` reaches the Runner and beats ``--amp`` and the
    resume options."""
    monkeypatch.setenv('LOCAL_RANK', '0')  # parse_args would set it
    train = load_tool('train')
    args = train.parse_args([
        'a/b.py', '--amp', '--resume', 'x.pth', '--cfg-options',
        'optim_wrapper.loss_scale=256.0', 'load_from=y.pth',
        'train_cfg.max_epochs=1'
    ])
    cfg = Config(toy_config('w', default_scope='mmdet'))
    merge_train_args(cfg, args)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 256.0
    assert cfg.resume is True and cfg.load_from == 'y.pth'
    # end to end: one epoch instead of two
    config = write_config(tmp_path)
    run([
        sys.executable,
        str(TOOLS / 'train.py'),
        str(config), '--work-dir',
        str(tmp_path / 'w'), '--cfg-options', 'train_cfg.max_epochs=1'
    ], cwd=tmp_path)
    assert (tmp_path / 'w' / 'epoch_1.pth').is_file()
    assert not (tmp_path / 'w' / 'epoch_2.pth').exists()


# ------------------------------------------------- argument merging rules
def _args(**kwargs) -> argparse.Namespace:
    args = dict(
        config='configs/x/my_config.py', work_dir=None, amp=False,
        auto_scale_lr=False, resume=None, cfg_options=None, launcher='none',
        checkpoint='c.pth')
    args.update(kwargs)
    return argparse.Namespace(**args)


def test_parse_args_like_upstream(monkeypatch):
    monkeypatch.setenv('LOCAL_RANK', '0')  # parse_args would set it
    train = load_tool('train')
    assert train.parse_args(['c.py', '--resume']).resume == 'auto'
    assert train.parse_args(['c.py']).resume is None
    assert train.parse_args(['c.py', '--resume', 'e.pth']).resume == 'e.pth'
    args = train.parse_args(['c.py', '--local-rank', '0', '--launcher',
                             'slurm'])
    assert args.local_rank == 0 and args.launcher == 'slurm'
    test = load_tool('test')
    args = test.parse_args(['c.py', 'e.pth', '--out', 'p.pkl'])
    assert (args.checkpoint, args.out) == ('e.pth', 'p.pkl')


@pytest.mark.parametrize('scope, forced', [('mmdet', True),
                                           ('mmpretrain', False),
                                           ('mmcls', False),
                                           ('mmselfsup', False),
                                           ('mmengine', False), (None, False)])
def test_amp_per_codebase(scope, forced):
    cfg = Config(toy_config('w', default_scope=scope))
    cfg.optim_wrapper.loss_scale = 512.0
    codebase = merge_train_args(cfg, _args(amp=True))
    assert codebase is get_codebase(cfg)
    assert codebase.name == (scope or 'mmengine')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == ('dynamic' if forced else 512.0)


def test_amp_refuses_custom_wrapper_where_upstream_does():
    for scope, refuses in (('mmselfsup', True), ('mmcls', True),
                           ('mmengine', True), ('mmdet', False),
                           ('mmpretrain', False)):
        cfg = Config(toy_config('w', default_scope=scope))
        cfg.optim_wrapper.type = 'MyOptimWrapper'
        if refuses:
            with pytest.raises(ValueError, match='--amp'):
                merge_train_args(cfg, _args(amp=True))
        else:
            merge_train_args(cfg, _args(amp=True))


def test_work_dir_resume_and_auto_scale_lr():
    cfg = toy_config('w')
    del cfg['work_dir']
    cfg = Config(cfg)
    merge_train_args(cfg, _args(config='my_config.py', resume='auto'))
    assert cfg.work_dir == osp.join('./work_dirs', 'my_config')
    assert cfg.resume is True and cfg.load_from is None
    cfg = Config(toy_config('from_cfg'))
    merge_train_args(cfg, _args())
    assert cfg.work_dir == 'from_cfg' and 'resume' not in cfg
    merge_train_args(cfg, _args(work_dir='cli'))
    assert cfg.work_dir == 'cli'
    with pytest.raises(RuntimeError, match='auto_scale_lr'):
        merge_train_args(cfg, _args(auto_scale_lr=True))
    cfg.auto_scale_lr = dict(base_batch_size=16, enable=False)
    merge_train_args(cfg, _args(auto_scale_lr=True))
    assert cfg.auto_scale_lr.enable is True
    cfg = Config(toy_config('w'))
    merge_test_args(cfg, _args(launcher='pytorch'))
    assert cfg.load_from == 'c.pth' and cfg.launcher == 'pytorch'


def test_pretrain_dataloader_defaults():
    cfg = Config(toy_config('w', default_scope='mmpretrain'))
    cfg.val_dataloader.num_workers = 2
    merge_train_args(cfg, _args())
    train, val = cfg.train_dataloader, cfg.val_dataloader
    assert train.pin_memory is True and val.pin_memory is True
    assert train.collate_fn == dict(type='toy_collate')  # config wins
    assert val.persistent_workers is True
    assert train.persistent_workers is False  # num_workers=0
    cfg = Config(toy_config('w', default_scope='mmdet'))
    merge_train_args(cfg, _args())
    assert 'pin_memory' not in cfg.train_dataloader


def test_missing_codebase_is_a_clear_error():
    codebase = get_codebase(Config(dict(default_scope='mmnotinstalled')))
    with pytest.raises(ImportError, match="default_scope='mmnotinstalled'"):
        codebase.require_installed('c.py')
    try:
        import mmselfsup  # noqa: F401
    except Exception:
        with pytest.raises(ImportError, match='mmcls'):
            CODEBASES['mmselfsup'].require_installed('c.py')


def test_cpu_model_wrapper_cfg():
    cfg = Config(toy_config('w', find_unused_parameters=True))
    assert cpu_model_wrapper_cfg(cfg) == dict(
        type='MMDistributedDataParallel', device_ids=None,
        broadcast_buffers=False, find_unused_parameters=True)
    cfg.model_wrapper_cfg = dict(find_unused_parameters=True)
    assert cpu_model_wrapper_cfg(cfg) == dict(
        type='MMDistributedDataParallel', device_ids=None,
        find_unused_parameters=True)
    cfg.model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel')
    assert cpu_model_wrapper_cfg(cfg).device_ids is None  # a DDP subclass
    cfg.model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel',
                                 device_ids=[0])
    assert cpu_model_wrapper_cfg(cfg).device_ids == [0]  # the config's
    cfg.model_wrapper_cfg = dict(type='MMFullyShardedDataParallel')
    assert 'device_ids' not in cpu_model_wrapper_cfg(cfg)  # not a DDP


def test_real_upstream_configs(tmp_path):
    """mmdet and mmpretrain configs (through ``_base_``) get their
    codebase's handling and a CPU-ready wrapper."""
    pytest.importorskip('mmdet')
    pytest.importorskip('mmpretrain')
    cases = {
        'det.py': ('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', 'mmdet'),
        'moco.py':
        ('mmpretrain::mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py',
         'mmpretrain'),
    }
    for name, (base, scope) in cases.items():
        (tmp_path / name).write_text(f'_base_ = {base!r}\n')
        cfg = Config.fromfile(tmp_path / name)
        cfg.optim_wrapper.loss_scale = 512.0
        codebase = merge_train_args(
            cfg, _args(config=str(tmp_path / name), amp=True,
                       auto_scale_lr=True))
        codebase.require_installed(name)
        if codebase.setup is not None:
            codebase.setup()
        assert codebase.name == scope
        assert cfg.auto_scale_lr.enable is True
        assert cfg.work_dir == osp.join('./work_dirs', name[:-3])
        assert cfg.optim_wrapper.loss_scale == (
            'dynamic' if scope == 'mmdet' else 512.0)
        assert ('pin_memory' in cfg.train_dataloader) == (scope != 'mmdet')
        wrapper = cpu_model_wrapper_cfg(cfg)
        assert wrapper.type == 'MMDistributedDataParallel'
        assert wrapper.device_ids is None
        metric = codebase.build_dump_metric(str(tmp_path / 'p.pkl'))
        assert type(metric).__name__ == ('DumpDetResults' if scope
                                         == 'mmdet' else 'DumpResults')


# ------------------------------------------------------- multi-process
def test_dist_train_two_gloo_processes_stay_identical(tmp_path):
    """``tools/dist_train.sh CONFIG 2`` on CPU: after every switch both
    ranks hold bit-identical weights, BN statistics and EMA."""
    config = write_config(tmp_path)
    work_dir = tmp_path / 'work_dir'
    out = run(['bash', str(TOOLS / 'dist_train.sh'),
               str(config), '2', '--work-dir',
               str(work_dir)],
              cwd=tmp_path,
              PORT=str(free_port())).stdout
    assert 'world size 2 on the CPU, gloo backend' in out
    assert (work_dir / 'epoch_2.pth').is_file()
    for epoch in (1, 2):
        r0, r1 = probe(work_dir, 0, epoch), probe(work_dir, 1, epoch)
        assert r0['world_size'] == r1['world_size'] == 2
        assert r0['wrapper'] == 'MMDistributedDataParallel'
        assert r0['num_switches'] == r1['num_switches'] == epoch
        assert_same_tensors(r0['model'], r1['model'])
        assert_same_tensors(r0['ema'], r1['ema'])
        for name in r0['model']:
            if name.endswith(('weight', 'bias')):  # switched: model == EMA
                assert torch.equal(r0['model'][name],
                                   r0['ema']['module.' + name])
        # Each rank trained on its own half of the data; the switch
        # averaged the rank-local BN statistics, so they are equal too.


def test_dist_test_two_processes(trained, tmp_path):
    config = write_config(tmp_path)
    ckpt = str(trained / 'epoch_2.pth')
    single = metric_of(
        run([sys.executable,
             str(TOOLS / 'test.py'),
             str(config), ckpt, '--work-dir',
             str(tmp_path / 'one')],
            cwd=tmp_path).stdout)
    out = run(['bash', str(TOOLS / 'dist_test.sh'),
               str(config), ckpt, '2', '--work-dir',
               str(tmp_path / 'two')],
              cwd=tmp_path,
              PORT=str(free_port())).stdout
    assert 'world size 2 on the CPU, gloo backend' in out
    assert metric_of(out) == pytest.approx(single)


# ---------------------------------------------------------------- slurm
FAKE_SRUN = """#!/usr/bin/env bash
# Record the arguments (one per line) and PYTHONPATH; run nothing.
printf '%s\\n' "$@" > "$SRUN_RECORD"
printf '%s' "$PYTHONPATH" > "$SRUN_RECORD.pythonpath"
"""


def fake_srun(tmp_path: Path, script: str, *args: str,
              **env: str) -> List[str]:
    """Run ``tools/<script>`` with a fake ``srun`` first on PATH; return
    the arguments srun got."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    srun = bin_dir / 'srun'
    srun.write_text(FAKE_SRUN)
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    record = tmp_path / f'{script}.args'
    run_env_path = str(bin_dir) + os.pathsep + run_env()['PATH']
    run(['bash', str(TOOLS / script), *args],
        cwd=REPO,
        PATH=run_env_path,
        SRUN_RECORD=str(record),
        **env)
    return record.read_text().splitlines()


def test_slurm_train_command_line(tmp_path):
    """What tools/slurm_train.sh asks srun for (real runs under a real
    slurm: tests/test_slurm.py)."""
    config = write_config(tmp_path)
    work_dir = tmp_path / 'work_dir'
    args = fake_srun(
        tmp_path, 'slurm_train.sh', 'part', 'sema', str(config),
        str(work_dir), '--cfg-options', 'train_cfg.max_epochs=1',
        GPUS='2', GPUS_PER_NODE='2', CPUS_PER_TASK='1',
        SRUN_ARGS='--quotatype=auto --time=5')
    assert args == [
        '-p', 'part', '--job-name=sema', '--gres=gpu:2', '--ntasks=2',
        '--ntasks-per-node=2', '--cpus-per-task=1', '--kill-on-bad-exit=1',
        '--quotatype=auto', '--time=5', 'python', '-u',
        str(TOOLS / 'train.py'),
        str(config), f'--work-dir={work_dir}', '--launcher=slurm',
        '--cfg-options', 'train_cfg.max_epochs=1'
    ]
    pythonpath = (tmp_path / 'slurm_train.sh.args.pythonpath').read_text()
    assert pythonpath.split(os.pathsep)[0] == f'{TOOLS}/..'


def test_slurm_test_command_line(tmp_path):
    config = write_config(tmp_path)
    args = fake_srun(tmp_path, 'slurm_test.sh', 'part', 'sema', str(config),
                     'e.pth', '--work-dir', str(tmp_path / 'w'))
    assert args == [
        '-p', 'part', '--job-name=sema', '--gres=gpu:8', '--ntasks=8',
        '--ntasks-per-node=8', '--cpus-per-task=5', '--kill-on-bad-exit=1',
        'python', '-u',
        str(TOOLS / 'test.py'),
        str(config), 'e.pth', '--launcher=slurm', '--work-dir',
        str(tmp_path / 'w')
    ]


def test_slurm_master_addr_ignores_a_failing_scontrol(tmp_path,
                                                     monkeypatch):
    """An installed but unconfigured ``scontrol`` prints an error, not a
    host: it must not become the rendezvous address."""
    from sema_mm.cli import launch
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    scontrol = bin_dir / 'scontrol'
    scontrol.write_text('#!/bin/sh\necho "scontrol: error: resolve_ctls_'
                        'from_dns_srv: res_nsearch error" >&2\nexit 1\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    assert launch._slurm_master_addr('node7') == 'node7'
    with pytest.raises(RuntimeError, match=r'node\[1-2\].*res_nsearch'):
        launch._slurm_master_addr('node[1-2]')
    scontrol.write_text('#!/bin/sh\nprintf "n1\\nn2\\n"\n')
    assert launch._slurm_master_addr('n[1-2]') == 'n1'


def test_mpi_launcher_on_cpu(tmp_path):
    """``--launcher mpi`` with the variables Open MPI sets (one rank)."""
    config = write_config(tmp_path)
    out = run([
        sys.executable,
        str(TOOLS / 'train.py'),
        str(config), '--work-dir',
        str(tmp_path / 'w'), '--launcher', 'mpi', '--cfg-options',
        'train_cfg.max_epochs=1'
    ],
              cwd=tmp_path,
              OMPI_COMM_WORLD_RANK='0',
              OMPI_COMM_WORLD_SIZE='1',
              OMPI_COMM_WORLD_LOCAL_RANK='0',
              MASTER_ADDR='127.0.0.1',
              MASTER_PORT=str(free_port())).stdout
    assert 'world size 1 on the CPU, gloo backend' in out
    assert probe(tmp_path / 'w', 0, 1)['wrapper'] == \
        'MMDistributedDataParallel'
