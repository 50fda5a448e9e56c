"""Self-supervised pre-training and evaluation configs (mmpretrain scope).

Every config of ``configs/selfsup`` is checked for its hooks and momenta and
builds a Runner as written (full-size model) and on the embedded digits (tiny
architecture of the same family, see
:mod:`sema_mm.datasets.digits_config`). The SEMA variant of every method
pre-trains 2 epochs through ``tools/train.py`` in
a subprocess and switches; SimCLR (contrastive) and MAE (masked image
modelling) are then evaluated by a linear probe on the saved backbone. For the
self-teaching methods :class:`TeacherProbeHook` replays, after every
iteration, the model's own teacher update (and MoCo's queue) and compares bit
for bit, with and without ``SwitchEMAHook``, and checks that the online encoder
equals the teacher right after each switch.

This module is also imported by the training subprocesses (through
``custom_imports``) for :class:`TeacherProbeHook`, and by
``tests/test_mmselfsup.py``; it imports nothing from mmpretrain at module
level.
"""
import copy
import glob
import os
import os.path as osp
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from sema_mm.ema.teachers import find_momentum_teachers, teacher_pairs

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(REPO, 'tools', 'train.py')
PROBE_IMPORTS = dict(
    imports=[
        'sema_mm', 'sema_mm.selfsup', 'tests.test_selfsup', 'tests.rank_probe'
    ],
    allow_failed_imports=False)
SWITCH_LINE = 'SwitchEMAHook: switch {} at the end of epoch {}'


# ------------------------------------------------------------ probe hook
def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module(force=True)
class TeacherProbeHook(Hook):
    """Replay the model's own teacher update after every iteration.

    Before an iteration it copies the teacher, the online modules the
    teacher follows, the teacher's ``steps`` and MoCo's queue. After it, the
    teacher's parameters must equal the averaged model's own update of the
    copies (``avg_func``, or a copy at ``steps == 0``) bit for bit, ``steps``
    must have grown by one, and MoCo's pointer must have moved by one batch,
    with the queue changed only there, to the keys of the updated teacher.
    After each epoch (priority LOW: after ``SwitchEMAHook`` switched) it
    records whether the online modules equal the teacher and whether the
    teacher, ``steps`` and the queue are as the last iteration left them.
    Everything lands in ``work_dir/teacher_probe_epoch{n}.pth``.
    """

    priority = 'LOW'

    def __init__(self) -> None:
        self.failures: List[str] = []
        self.iters = 0
        self.copied_iters = 0

    def before_train(self, runner) -> None:
        model = _unwrap(runner.model)
        found = find_momentum_teachers(model)
        assert len(found) == 1, found
        self.name = found[0]
        self.pairs = teacher_pairs(model, self.name)
        assert self.pairs, self.name
        self.prefix = f'{self.name}.module.'

    def _state(self, model) -> Dict[str, torch.Tensor]:
        teacher = model.get_submodule(self.name)
        state = {
            'teacher.' + n: p.detach().clone()
            for n, p in teacher.module.named_parameters()
        }
        state['steps'] = teacher.steps.detach().clone()
        for name in ('queue', 'queue_ptr'):
            if hasattr(model, name):
                state[name] = getattr(model, name).detach().clone()
        return state

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        model = _unwrap(runner.model)
        self.before = self._state(model)
        self.online = {
            o: model.get_parameter(o).detach().clone()
            for _, o in self.pairs
        }
        self.batch = data_batch

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        model = _unwrap(runner.model)
        teacher = model.get_submodule(self.name)
        steps = int(self.before['steps'])
        self.iters += 1
        self.copied_iters += steps == 0
        where = f'iter {runner.iter + 1}'
        for t_name, o_name in self.pairs:
            local = t_name[len(self.prefix):]
            expected = self.online[o_name].clone()
            if steps:
                expected = self.before['teacher.' + local].clone()
                # the model passes its `steps` buffer (a tensor) on
                teacher.avg_func(expected, self.online[o_name],
                                 self.before['steps'].clone())
            if not torch.equal(teacher.module.get_parameter(local),
                               expected):
                self.failures.append(f'{where}: teacher {local}')
        if int(teacher.steps) != steps + 1:
            self.failures.append(f'{where}: steps {int(teacher.steps)}')
        if hasattr(model, 'queue'):
            self._check_queue(model, teacher, where)

    def _check_queue(self, model, teacher, where: str) -> None:
        ptr = int(self.before['queue_ptr'])
        queue, length = model.queue, model.queue.shape[1]
        with torch.no_grad():
            data = model.data_preprocessor(self.batch, True)
            # mmpretrain returns a dict, mmselfsup (inputs, data_samples)
            inputs = data['inputs'] if isinstance(data, dict) else data[0]
            keys = copy.deepcopy(teacher.module).train()(inputs[1])[0]
            keys = torch.nn.functional.normalize(keys, dim=1)
        size = keys.shape[0]
        if int(model.queue_ptr) != (ptr + size) % length:
            self.failures.append(f'{where}: queue_ptr {int(model.queue_ptr)}')
        kept = torch.ones(length, dtype=torch.bool)
        kept[ptr:ptr + size] = False
        if not torch.equal(queue[:, kept], self.before['queue'][:, kept]):
            self.failures.append(f'{where}: queue changed outside the batch')
        if not torch.allclose(
                queue[:, ptr:ptr + size], keys.t(), atol=1e-5):
            self.failures.append(f'{where}: enqueued keys')

    def after_train_epoch(self, runner) -> None:
        model = _unwrap(runner.model)
        teacher = model.get_submodule(self.name)
        now = self._state(model)
        switched = all(
            torch.equal(
                model.get_parameter(o),
                teacher.module.get_parameter(t[len(self.prefix):]))
            for t, o in self.pairs)
        hooks = [h for h in runner.hooks if type(h).__name__ ==
                 'SwitchEMAHook']
        torch.save(
            dict(
                failures=list(self.failures),
                iters=self.iters,
                copied_iters=self.copied_iters,
                online_equals_teacher=switched,
                num_switches=hooks[0].num_switches if hooks else 0,
                teacher_name=self.name,
                state=now),
            osp.join(runner.work_dir,
                     f'teacher_probe_epoch{runner.epoch + 1}.pth'))


@HOOKS.register_module(force=True)
class TeacherSnapshotHook(Hook):
    """Record the teacher and queue right after the last iteration of each
    epoch (priority VERY_HIGH: before any ``after_train_epoch`` work), so
    that a switch can be shown to leave them untouched."""

    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if batch_idx + 1 == len(runner.train_dataloader):
            model = _unwrap(runner.model)
            name = find_momentum_teachers(model)[0]
            state = copy.deepcopy(model.get_submodule(name).state_dict())
            for key in ('queue', 'queue_ptr'):
                if hasattr(model, key):
                    state[key] = getattr(model, key).detach().clone()
            torch.save(
                state,
                osp.join(runner.work_dir,
                         f'teacher_snapshot_epoch{runner.epoch + 1}.pth'))


# ------------------------------------------------------------- helpers
def run_env() -> Dict[str, str]:
    """Environment of a training subprocess: repository on PYTHONPATH, no
    GPU, no launcher variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                     'MASTER_PORT')
    }
    env['PYTHONPATH'] = REPO
    env['CUDA_VISIBLE_DEVICES'] = ''
    env['PYTHONWARNINGS'] = 'ignore'
    return env


def run_train(config: str, work_dir: str, *options: str,
              script: str = TRAIN, timeout: int = 600) -> str:
    """``python <script> config --work-dir work_dir [options]``; its output.
    """
    cmd = [sys.executable, script, config, '--work-dir', work_dir]
    if options:
        cmd += ['--cfg-options', *options]
    proc = subprocess.run(
        cmd, cwd=osp.dirname(work_dir), env=run_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=timeout)
    assert proc.returncode == 0, f'{cmd} failed:\n{proc.stdout[-6000:]}'
    return proc.stdout


def top1(output: str) -> List[float]:
    """The validation top-1 accuracies a training run logged."""
    return [
        float(v)
        for v in re.findall(r'Epoch\(val\).*accuracy/top1: ([0-9.]+)', output)
    ]


def load(path: str) -> dict:
    import sema_mm  # noqa: F401  (weights_only loading of mmengine files)
    return torch.load(path, map_location='cpu', weights_only=False)


def config_path(*parts: str) -> str:
    return osp.join(REPO, 'configs', *parts)


def digits_config(config: str, out_dir: str, data_root: str,
                  **extra) -> str:
    """Write the digits run of ``config`` into ``out_dir``."""
    from sema_mm.datasets.digits_config import write_digits_config
    out = osp.join(out_dir, f'{uuid.uuid4().hex[:6]}_{osp.basename(config)}')
    return write_digits_config(config, out, data_root=data_root, extra=extra)


def build_runner(config: str, work_dir: str):
    """The Runner of a config file (unique instance names), of its
    ``runner_type`` if it names one, as mmengine's tools build it."""
    from mmengine.config import Config
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    cfg.experiment_name = f'test_{uuid.uuid4().hex[:8]}'
    cfg.log_level = 'WARNING'
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


# ---------------------------------------------------------------- data
METHODS = {
    # folder: (config stem, kind, teacher, model momentum key and value)
    'simclr': ('simclr_resnet50_16xb256-coslr-200e_in1k', 'cl', None),
    'mocov2': ('mocov2_resnet50_8xb32-coslr-200e_in1k', 'teacher',
               'encoder_k'),
    'byol': ('byol_resnet50_16xb256-coslr-200e_in1k', 'teacher',
             'target_net'),
    'barlowtwins': ('barlowtwins_resnet50_8xb256-coslr-300e_in1k', 'cl',
                    None),
    'mocov3': ('mocov3_vit-small-p16_16xb256-amp-coslr-300e_in1k', 'teacher',
               'momentum_encoder'),
    'simmim': ('simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px', 'mim',
               None),
    'mae': ('mae_vit-base-p16_8xb512-amp-coslr-300e_in1k', 'mim', None),
}
# Table A1, ImageNet-1K, converted to mmengine's momentum = 1 - alpha.
EMA_MOMENTUM = dict(cl=4e-5, mim=1e-3)
SEMA_MOMENTUM = dict(cl=1e-4, mim=1e-3)
UPSTREAM_TEACHER = dict(
    mocov2=('momentum', 0.001),
    byol=('base_momentum', 0.01),
    mocov3=('base_momentum', 0.01))


def variants(kind: str) -> List[str]:
    return ['basic', 'ema', 'sema'] if kind == 'teacher' else [
        'baseline', 'ema', 'sema'
    ]


def all_configs(top: str = 'selfsup') -> List[str]:
    return sorted(
        glob.glob(osp.join(REPO, 'configs', top, '**', '*.py'),
                  recursive=True))


# --------------------------------------------------------------- tests
def test_every_method_has_its_variants():
    found = {osp.relpath(p, config_path('selfsup')) for p in all_configs()}
    for folder, (stem, kind, _) in METHODS.items():
        for variant in variants(kind):
            assert f'{folder}/{stem}_{variant}.py' in found
        assert any(p.startswith(f'{folder}/benchmarks/') for p in found)


@pytest.mark.parametrize('folder', sorted(METHODS))
def test_pretrain_hooks_and_momenta(folder):
    """One EMA-type hook at most, Table A1's momenta, upstream teachers."""
    from mmengine.config import Config
    stem, kind, teacher = METHODS[folder]
    for variant in variants(kind):
        cfg = Config.fromfile(config_path('selfsup', folder,
                                          f'{stem}_{variant}.py'))
        assert cfg.default_scope == 'mmpretrain'
        assert 'sema_mm' in cfg.custom_imports['imports']
        hooks = [h['type'] for h in cfg.get('custom_hooks', [])]
        if variant == 'baseline' or (variant == 'ema' and teacher):
            assert hooks == []
        elif variant == 'basic':
            assert hooks == ['CopyTeacherHook']
            assert 'sema_mm.selfsup' in cfg.custom_imports['imports']
        elif variant == 'ema':
            assert hooks == ['EMAHook']
            assert cfg.custom_hooks[0].momentum == EMA_MOMENTUM[kind]
        elif teacher:
            assert hooks == ['SwitchEMAHook']
            assert cfg.custom_hooks[0].teacher == 'auto'
        else:
            assert hooks == ['SwitchEMAHook']
            assert cfg.custom_hooks[0].momentum == SEMA_MOMENTUM[kind]
        if teacher:  # the teacher's own momentum is upstream's
            key, value = UPSTREAM_TEACHER[folder]
            assert cfg.model[key] == value
        # the untagged collate_fn (see the configs' comment)
        assert '_scope_' not in cfg.train_dataloader.collate_fn


@pytest.mark.parametrize('size', ['full', 'digits'])
@pytest.mark.parametrize(
    'config',
    [osp.relpath(p, REPO) for p in all_configs()],
    ids=lambda p: osp.relpath(p, 'configs/selfsup'))
def test_config_builds_runner(config, size, digits, tmp_path):
    """Each config builds its Runner as written (full-size model; no data
    is read before training) and on the digits with a tiny architecture,
    with the intended hooks; evaluation configs point their backbone at a
    pre-training checkpoint (``init_cfg``, prefix ``backbone.``)."""
    cfg_file = osp.join(REPO, config) if size == 'full' else digits_config(
        osp.join(REPO, config), str(tmp_path), digits)
    runner = build_runner(cfg_file, str(tmp_path / 'work'))
    check_built_hooks(runner, config, ema_hook_type('mmpretrain'))


def ema_hook_type(scope: str) -> type:
    """The EMAHook class an ``_ema`` config of ``scope`` registers."""
    if scope == 'mmpretrain':
        from mmpretrain.engine.hooks import EMAHook
    else:
        from mmengine.hooks import EMAHook
    return EMAHook


def check_built_hooks(runner, config: str, ema_hook: type) -> None:
    """The hooks a built pre-training config holds for its variant (at most
    one EMA-type hook), and the ``init_cfg`` (prefix ``backbone.``) of an
    evaluation config's classifier."""
    from sema_mm.hooks import SwitchEMAHook
    from sema_mm.selfsup import CopyTeacherHook
    names = [type(h) for h in runner.hooks]
    stem = osp.basename(config)[:-3]
    if '/benchmarks/' in config:
        init_cfg = runner.cfg.model.backbone.init_cfg
        assert init_cfg.type == 'Pretrained'
        assert init_cfg.prefix == 'backbone.'
        assert type(runner.model).__name__ == 'ImageClassifier'
    elif stem.endswith('_sema'):
        assert SwitchEMAHook in names
    elif stem.endswith('_basic'):
        assert CopyTeacherHook in names
    elif stem.endswith('_ema') and not find_momentum_teachers(runner.model):
        assert ema_hook in names
    assert len([h for h in runner.hooks
                if 'EMAHook' in type(h).__name__]) <= 1


@pytest.mark.parametrize('folder', ['simclr', 'mocov2', 'byol', 'mocov3'])
def test_colour_jitter_pipeline_on_colour_images(folder):
    """The upstream multi-view pipeline, hue jitter included, turns random
    colour images into two 224x224 views (mmcv 2.x's ``adjust_hue``
    overflows on a negative hue shift under numpy 2, hence numpy < 2)."""
    import numpy as np
    from mmengine.config import Config
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    stem, kind, _ = METHODS[folder]
    cfg = Config.fromfile(
        config_path('selfsup', folder, f'{stem}_{variants(kind)[-1]}.py'))
    pipeline = cfg.train_dataloader.dataset.pipeline
    assert pipeline[0].type == 'LoadImageFromFile'
    assert 'hue=0.1' in cfg.pretty_text.replace(' ', '') or \
        'hue=0.2' in cfg.pretty_text.replace(' ', '')
    init_default_scope('mmpretrain')
    transform = Compose(pipeline[1:])
    np.random.seed(0)
    for _ in range(6):
        img = np.random.randint(0, 256, (96, 128, 3), dtype=np.uint8)
        out = transform(dict(img=img, img_shape=(96, 128),
                             ori_shape=(96, 128)))
        assert [tuple(v.shape) for v in out['inputs']] == [(3, 224, 224)] * 2


def _probe_extra(hooks: list) -> dict:
    return dict(custom_imports=PROBE_IMPORTS, custom_hooks=hooks)


@pytest.fixture(scope='module')
def pretrained(digits, tmp_path_factory) -> Dict[str, str]:
    """Checkpoints of the SEMA pre-training runs by method, filled by
    ``test_sema_pretrains_and_switches`` (which runs first) for the linear
    probes."""
    return {}


@pytest.mark.parametrize('folder', sorted(METHODS))
def test_sema_pretrains_and_switches(folder, digits, pretrained,
                                     tmp_path_factory):
    """2 epochs of the SEMA config through ``tools/train.py``: a switch at
    the end of each epoch; for the self-teaching methods the probes replay
    every teacher update and queue bit for bit, the online encoder equals
    the teacher after each switch and the switch leaves teacher, counter
    and queue untouched."""
    from mmengine.config import Config
    stem, kind, teacher = METHODS[folder]
    root = tmp_path_factory.mktemp(f'sema_{folder}')
    config = config_path('selfsup', folder, f'{stem}_sema.py')
    # the config's own hooks, then the probes (custom_hooks is replaced whole)
    hooks = [dict(h) for h in Config.fromfile(config).custom_hooks]
    if teacher:
        hooks += [dict(type='TeacherProbeHook'),
                  dict(type='TeacherSnapshotHook')]
    else:
        hooks += [dict(type='RankProbeHook')]
    extra = _probe_extra(hooks)
    cfg_file = digits_config(config, str(root), digits, **extra)
    work_dir = str(root / 'work')
    out = run_train(cfg_file, work_dir)
    assert SWITCH_LINE.format(1, 1) in out
    assert SWITCH_LINE.format(2, 2) in out
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))
    pretrained[folder] = osp.join(work_dir, 'epoch_2.pth')
    if teacher:
        check_teacher_probe(work_dir, num_switches=True)
    else:
        check_switched(work_dir)


def check_switched(work_dir: str) -> None:
    """After each of 2 epochs' switches the model's floating-point
    parameters equal the EMA's (``tests.rank_probe`` snapshots; buffers are
    the model's own, not switched)."""
    for epoch in (1, 2):
        state = load(osp.join(work_dir, f'rank0_epoch{epoch}.pth'))
        assert state['num_switches'] == epoch
        params = [k for k, v in state['model'].items()
                  if v.is_floating_point() and 'running_' not in k]
        assert params
        for name in params:
            assert torch.equal(state['model'][name],
                               state['ema']['module.' + name]), name


def check_teacher_probe(work_dir: str, num_switches: bool,
                        copies: bool = False, epochs: int = 2) -> None:
    """Assert what :class:`TeacherProbeHook` recorded."""
    for epoch in range(1, epochs + 1):
        probe = load(osp.join(work_dir, f'teacher_probe_epoch{epoch}.pth'))
        assert probe['failures'] == [], probe['failures'][:10]
        assert probe['iters'] == 4 * epoch
        if copies:  # Basic: every update is a copy
            assert probe['copied_iters'] == probe['iters']
        else:  # only the very first update copies
            assert probe['copied_iters'] == 1
        if num_switches:
            assert probe['num_switches'] == epoch
            assert probe['online_equals_teacher']
            # the switch left the teacher, its counter and queue alone
            snap = load(
                osp.join(work_dir, f'teacher_snapshot_epoch{epoch}.pth'))
            state = probe['state']
            assert torch.equal(snap['steps'], state['steps'])
            assert int(state['steps']) == 4 * epoch
            for name, value in snap.items():
                if name.startswith('module.') and (
                        'teacher.' + name[len('module.'):]) in state:
                    assert torch.equal(
                        value, state['teacher.' + name[len('module.'):]])
            for key in ('queue', 'queue_ptr'):
                if key in snap:
                    assert torch.equal(snap[key], state[key])
        else:
            assert probe['num_switches'] == 0


def test_mae_fsdp_config_equals_its_ddp_reference(digits, tmp_path):
    """The MAE FSDP config (``_sema-fsdp.py``: FlexibleRunner, FSDPStrategy,
    full checkpoints) and its DDP reference (``_sema-ddp.py``) on the
    digits, 2 gloo processes, 2 epochs: the FSDP run keeps a sharded EMA,
    and its checkpoint's ``state_dict`` (the whole EMA) equals the DDP
    run's."""
    from tests.test_distributed import train
    from tests.test_tools import load_ckpt
    stem = 'mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k_sema'
    states, logs = {}, {}
    for variant in ('fsdp', 'ddp'):
        root = tmp_path / variant
        root.mkdir()
        cfg = digits_config(config_path('selfsup', f'{stem}-{variant}.py'),
                            str(root), digits)
        logs[variant] = train(Path(cfg), root / 'work', 2).stdout
        assert SWITCH_LINE.format(2, 2) in logs[variant]
        ckpt = load_ckpt(root / 'work' / 'epoch_2.pth')
        states[variant] = {  # DDP's keys have the wrapper's `module.`
            k[len('module.'):] if k.startswith('module.') else k: v
            for k, v in ckpt['state_dict'].items()
        }
    assert 'sharded model (fsdp1)' in logs['fsdp']
    assert 'sharded model' not in logs['ddp']
    assert sorted(states['fsdp']) == sorted(states['ddp'])
    for name, tensor in states['ddp'].items():
        torch.testing.assert_close(states['fsdp'][name], tensor, rtol=0,
                                   atol=1e-6, msg=name)


@pytest.mark.parametrize('folder, variant', [
    ('mocov2', 'ema'), ('mocov3', 'ema'),
    ('mocov2', 'basic'), ('byol', 'basic'), ('mocov3', 'basic'),
])
def test_teacher_is_the_models_own(folder, variant, digits, tmp_path):
    """Without SwitchEMAHook: the standard method ("EMA") updates its
    teacher (and MoCo's queue) exactly as the model's code does, and
    "Basic" makes every update an exact copy of the online encoder
    (in-process Runner). BYOL's teacher is the same ``CosineEMA`` as MoCo
    v3's; with SwitchEMAHook all three are replayed in
    ``test_sema_pretrains_and_switches``."""
    stem, _, _ = METHODS[folder]
    config = config_path('selfsup', folder, f'{stem}_{variant}.py')
    hooks = [dict(type='TeacherProbeHook')]
    if variant == 'basic':
        hooks.insert(0, dict(type='CopyTeacherHook'))
    cfg_file = digits_config(config, str(tmp_path), digits,
                             **_probe_extra(hooks))
    runner = build_runner(cfg_file, str(tmp_path / 'work'))
    runner.train()
    check_teacher_probe(str(tmp_path / 'work'), num_switches=False,
                        copies=variant == 'basic')
    if variant == 'basic':
        # after the last update the teacher is the online encoder as it was
        # before the last optimizer step: one step behind, not averaged
        model = _unwrap(runner.model)
        teacher = model.get_submodule(METHODS[folder][2])
        assert int(teacher.steps) == 1  # reset before every iteration


LINEAR = {
    'simclr': 'simclr/benchmarks/resnet50_8xb512-linear-coslr-90e_in1k.py',
    'mae': 'mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py',
}


@pytest.mark.parametrize('folder', sorted(LINEAR))
def test_linear_probe_on_saved_ema_backbone(folder, digits, pretrained,
                                            tmp_path):
    """The evaluation config loads the pre-training checkpoint's backbone
    (its ``state_dict``: the EMA after the last switch) with
    ``--cfg-options model.backbone.init_cfg.checkpoint=...``, trains its
    linear head on the frozen backbone and reports top-1."""
    from sema_mm.selfsup import backbone_state_dict
    if folder not in pretrained:
        pytest.skip(f'the SEMA pre-training of {folder} did not run')
    ckpt = pretrained[folder]
    cfg_file = digits_config(config_path('selfsup', LINEAR[folder]),
                             str(tmp_path), digits)
    work_dir = str(tmp_path / 'linear')
    out = run_train(cfg_file, work_dir,
                    f'model.backbone.init_cfg.checkpoint={ckpt}')
    accuracy = top1(out)
    assert len(accuracy) == 2 and all(0 <= a <= 100 for a in accuracy)
    ema_backbone = backbone_state_dict(ckpt)
    probed = backbone_state_dict(osp.join(work_dir, 'epoch_2.pth'))
    shared = [k for k, v in probed.items() if v.is_floating_point()
              and k in ema_backbone and 'running_' not in k]
    assert len(shared) > 10
    for key in shared:  # frozen: still the pre-trained EMA weights
        assert torch.equal(probed[key], ema_backbone[key]), key


def test_copy_teacher_hook_refuses_models_without_teacher(digits, tmp_path):
    cfg_file = digits_config(
        config_path('selfsup', 'simclr',
                    'simclr_resnet50_16xb256-coslr-200e_in1k_baseline.py'),
        str(tmp_path), digits,
        custom_imports=dict(imports=['sema_mm', 'sema_mm.selfsup']),
        custom_hooks=[dict(type='CopyTeacherHook')])
    runner = build_runner(cfg_file, str(tmp_path / 'work'))
    with pytest.raises(ValueError, match='no momentum teacher'):
        runner.train()



def test_mmselfsup_compat_is_inert_without_mmselfsup():
    """The mmselfsup 1.0.0 compatibility import registers nothing where
    mmselfsup is missing, and never replaces a module that exists."""
    from sema_mm.compat import mmselfsup as mmselfsup_compat
    try:
        import mmselfsup  # noqa: F401
    except Exception:
        assert mmselfsup_compat.ensure_mmselfsup_runner_module() is False
        assert mmselfsup_compat.MISSING not in sys.modules
    else:
        mmselfsup_compat.ensure_mmselfsup_runner_module()
        assert mmselfsup_compat.MISSING in sys.modules


def test_benchmark_runner_rebuilds_the_inherited_tags_in_default_scope(
        tmp_path):
    """``MMSelfSupBenchmarkRunner`` builds the model, datasets, evaluators
    and loop that mmengine tagged ``_scope_='mmselfsup'`` in the default
    scope, drops the tag of ``collate_fn``, and leaves every other scope
    (and the config it was given) as it is. Here on the digits demo config
    under the mmpretrain scope; the mmselfsup 1.0.0 benchmarks themselves
    build and train in ``tests/test_mmselfsup.py``."""
    from mmengine.config import Config
    from mmengine.registry import RUNNERS

    from sema_mm.compat.mmselfsup import (
        BUILT_IN_DEFAULT_SCOPE,
        MMSelfSupBenchmarkRunner,
        rescope_benchmark,
    )
    assert RUNNERS.get('MMSelfSupBenchmarkRunner') is MMSelfSupBenchmarkRunner
    cfg = Config.fromfile(config_path('demo', 'resnet_digits_sema.py'))
    for dotted in BUILT_IN_DEFAULT_SCOPE:
        node = cfg
        for key in dotted.split('.'):
            node = node[key]
        node['_scope_'] = 'mmselfsup'
    cfg.train_dataloader.collate_fn = dict(_scope_='mmselfsup',
                                           type='default_collate')
    cfg.optim_wrapper._scope_ = 'mmselfsup'  # a scope upstream meant
    cfg.val_evaluator._scope_ = 'mmdet'  # not a tag of mmselfsup::
    cfg.test_dataloader = None
    cfg.test_evaluator = None
    cfg.test_cfg = None
    before = cfg.to_dict()

    rescoped = rescope_benchmark(cfg)
    assert cfg.to_dict() == before
    assert rescoped.model._scope_ == 'mmpretrain'
    assert rescoped.train_dataloader.dataset._scope_ == 'mmpretrain'
    assert rescoped.val_dataloader.dataset._scope_ == 'mmpretrain'
    assert rescoped.train_cfg._scope_ == 'mmpretrain'
    assert rescoped.train_dataloader.collate_fn == dict(
        type='default_collate')
    assert rescoped.optim_wrapper._scope_ == 'mmselfsup'
    assert rescoped.val_evaluator._scope_ == 'mmdet'

    cfg.val_evaluator._scope_ = 'mmselfsup'
    cfg.runner_type = 'MMSelfSupBenchmarkRunner'
    cfg.work_dir = str(tmp_path)
    cfg.experiment_name = 'benchmark_runner'
    cfg.log_level = 'WARNING'
    runner = RUNNERS.build(cfg)
    assert type(runner) is MMSelfSupBenchmarkRunner
    assert runner.cfg.model._scope_ == 'mmpretrain'
    assert runner.cfg.val_evaluator._scope_ == 'mmpretrain'
    assert type(runner.model).__name__ == 'ImageClassifier'
