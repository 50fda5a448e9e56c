"""The detection configs under ``configs/``, on the real mmdet 3.3.0 stack.

Every experiment has three variants (baseline, EMA, SEMA). The tests check:

* what each variant changes: the baseline against mmdet's own config, the
  EMA and SEMA variants against the baseline (``custom_hooks`` only);
* that every variant builds its Runner with exactly the intended EMA-type
  hook (type, momentum, averaged model, buffers, priority) and optimizer;
* that the SEMA variant of every detector trains two epochs with
  ``tools/train.py`` on synthetic COCO data at 64 px, switching at each
  epoch end (three times per epoch over ``RepeatDataset(times=3)``),
  validating with pycocotools (bbox, and segm for the mask models) and
  saving checkpoints, which ``tools/test.py`` then evaluates to the same
  metrics;
* that a SEMA config trains with mmdet's own ``tools/train.py`` and its
  checkpoint tests with mmdet's own ``tools/test.py`` (the drop-in promise);
* that ``tools/dist_train.sh CONFIG 2`` (two gloo processes on the CPU)
  keeps both ranks bit-identical, weights and EMA, after every switch.

Nothing is downloaded: pretrained backbones are turned off with the other
small-scale overrides of :mod:`sema_mm.datasets.detection_smoke`.
"""
import json
import os
import os.path as osp
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import EMAHook
from mmengine.runner import Runner, get_priority

import sema_mm  # noqa: F401  (registers SwitchEMAHook; safe checkpoints)
from sema_mm.datasets.detection_smoke import smoke_cfg_options, to_cli
from sema_mm.datasets.synthetic_coco import make_synthetic_coco
from sema_mm.hooks import SwitchEMAHook

mmdet = pytest.importorskip('mmdet')

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'configs'
TOOLS = REPO / 'tools'
MMDET_TOOLS = Path(mmdet.__file__).parent / '.mim' / 'tools'
VARIANTS = ('baseline', 'ema', 'sema')
LAUNCH_VARS = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE',
               'MASTER_ADDR', 'MASTER_PORT', 'GROUP_RANK', 'TORCHELASTIC')

# name: (config stem, upstream config, what the baseline changes upstream,
#        optimizer type and lr)
EXPERIMENTS = {
    'mask_rcnn': ('mask_rcnn/mask-rcnn_r50_fpn_2x_coco',
                  'mask_rcnn/mask-rcnn_r50_fpn_2x_coco.py', (), 'SGD', 0.02),
    'cascade_1x': ('cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco',
                   'cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py', (),
                   'SGD', 0.02),
    'cascade_ms_3x': ('cascade_rcnn/cascade-mask-rcnn_r50_fpn_ms-3x_coco',
                      'cascade_rcnn/cascade-mask-rcnn_r50_fpn_ms-3x_coco.py',
                      ('val_evaluator.metric', 'test_evaluator.metric'),
                      'SGD', 0.02),
    'retinanet_r50': ('retinanet/retinanet_r50_fpn_2x_coco',
                      'retinanet/retinanet_r50_fpn_2x_coco.py', (), 'SGD',
                      0.01),
    'retinanet_swin': ('retinanet/retinanet_swin-t-p4-w7_fpn_1x_coco',
                       'swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py',
                       ('optim_wrapper.optimizer',
                        'optim_wrapper.paramwise_cfg'), 'AdamW', 1e-4),
    'yolox_s': ('yolox/yolox_s_8xb8-300e_coco',
                'yolox/yolox_s_8xb8-300e_coco.py', ('custom_hooks', ), 'SGD',
                0.01),
}
YOLOX_HOOKS = [
    dict(type='YOLOXModeSwitchHook', num_last_epochs=15, priority=48),
    dict(type='SyncNormHook', priority=48),
]


def config_path(name: str, variant: str) -> Path:
    return CONFIGS / f'{EXPERIMENTS[name][0]}_{variant}.py'


def expected_ema_hook(name: str, variant: str) -> Optional[dict]:
    """What the variant's one EMA-type hook must be (None: no such hook)."""
    yolox = name == 'yolox_s'
    if variant == 'ema':
        return dict(
            cls=EMAHook, momentum=1e-4,
            ema_type='ExpMomentumEMA' if yolox else 'ExponentialMovingAverage',
            update_buffers=yolox, priority=49 if yolox else 'NORMAL')
    if variant == 'sema':
        return dict(
            cls=SwitchEMAHook, momentum=1e-3,
            ema_type='ExpMomentumEMA' if yolox else 'FusedEMA',
            update_buffers=yolox, buffers='average' if yolox else 'params',
            switches_per_epoch=3 if name == 'cascade_ms_3x' else 1,
            priority=49 if yolox else 'NORMAL')
    return None


# ------------------------------------------------------------- helpers
def strip_scope(node):
    """``node`` without the ``_scope_`` keys mmengine adds to dicts
    inherited from ``mmdet::`` bases."""
    if isinstance(node, dict):
        return {k: strip_scope(v) for k, v in node.items() if k != '_scope_'}
    if isinstance(node, (list, tuple)):
        return type(node)(strip_scope(v) for v in node)
    return node


def diff_paths(a, b, prefix: str = '') -> List[str]:
    """Dotted paths where the plain config trees ``a`` and ``b`` differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        paths = []
        for key in sorted(set(a) | set(b)):
            path = f'{prefix}{key}'
            if key not in a or key not in b:
                paths.append(path)
            else:
                paths += diff_paths(a[key], b[key], path + '.')
        return paths
    return [] if a == b else [prefix.rstrip('.')]


def plain(cfg: Config) -> dict:
    return strip_scope(cfg.to_dict())


def load_upstream(rel_path: str, tmp_path: Path) -> Config:
    """mmdet's own config, loaded through ``mmdet::`` like ours."""
    path = tmp_path / 'upstream.py'
    path.write_text(f"_base_ = 'mmdet::{rel_path}'\n")
    return Config.fromfile(str(path))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(cmd: List[str], cwd: Path, timeout: int = 900,
        **env: str) -> str:
    """Run ``cmd`` on the CPU, this venv and the repository first; return
    its output, failing the test with it when the command fails.

    One intra-op thread per process (``torchrun`` sets the same for each
    of its processes): with two threads on a two-core machine that is busy
    with anything else, torch's CPU kernels run many times slower.
    """
    environ = {
        k: v
        for k, v in os.environ.items() if not k.startswith(LAUNCH_VARS)
    }
    environ.update(
        PATH=osp.dirname(sys.executable) + os.pathsep + environ['PATH'],
        PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    environ.update(env)
    proc = subprocess.run(
        cmd, cwd=cwd, env=environ, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=timeout)
    assert proc.returncode == 0, f'{cmd} failed:\n{proc.stdout[-8000:]}'
    return proc.stdout


def val_records(work_dir: Path) -> List[dict]:
    """The validation records of ``vis_data/scalars.json``."""
    (scalars, ) = work_dir.glob('*/vis_data/scalars.json')
    records = [json.loads(line) for line in scalars.read_text().split('\n')
               if line.strip()]
    return [r for r in records if 'coco/bbox_mAP' in r]


def printed_metrics(output: str) -> Dict[str, float]:
    """The metrics ``tools/test.py`` printed."""
    found = re.findall(r'Test metrics: (.*)', output)
    assert found, output[-3000:]
    return {
        k: float(v)
        for k, v in re.findall(r'(coco/\w+): (-?[0-9.]+)', found[-1])
    }


def load_ckpt(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True, mmap=True)


@pytest.fixture(scope='module')
def coco(tmp_path_factory) -> str:
    """4 training and 4 validation images of 64 px."""
    root = str(tmp_path_factory.mktemp('detection') / 'coco')
    make_synthetic_coco(root, num_train=4, num_val=4, size=64, seed=0)
    return root


# ------------------------------------------------ what the configs change
@pytest.mark.parametrize('name', sorted(EXPERIMENTS))
def test_variants_change_only_what_they_should(name, tmp_path):
    _, upstream_path, changed, _, _ = EXPERIMENTS[name]
    upstream = plain(load_upstream(upstream_path, tmp_path))
    cfgs = {v: Config.fromfile(str(config_path(name, v))) for v in VARIANTS}
    for variant, cfg in cfgs.items():
        assert cfg.custom_imports == dict(
            imports=['sema_mm'], allow_failed_imports=False), variant
        assert cfg.default_scope == 'mmdet'
    baseline = plain(cfgs['baseline'])
    paths = diff_paths(upstream, baseline)
    allowed = ('custom_imports', ) + changed
    assert all(p.startswith(allowed) for p in paths), paths
    assert all(any(p.startswith(c) for p in paths) for c in changed), paths
    for variant in ('ema', 'sema'):
        assert diff_paths(baseline, plain(cfgs[variant])) == [
            'custom_hooks'
        ], variant
    if name == 'cascade_ms_3x':
        assert upstream['val_evaluator']['metric'] == 'bbox'
        for evaluator in ('val_evaluator', 'test_evaluator'):
            assert baseline[evaluator]['metric'] == ['bbox', 'segm']
        inner = baseline['train_dataloader']['dataset']
        assert inner['type'] == 'RepeatDataset' and inner['times'] == 3
    if name == 'retinanet_swin':
        assert baseline['optim_wrapper']['optimizer'] == dict(
            type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
        assert baseline['optim_wrapper']['paramwise_cfg'] == dict(
            custom_keys={
                'absolute_pos_embed': dict(decay_mult=0.),
                'relative_position_bias_table': dict(decay_mult=0.),
                'norm': dict(decay_mult=0.)
            })
    if name == 'yolox_s':
        assert upstream['custom_hooks'][:2] == YOLOX_HOOKS
        assert baseline['custom_hooks'] == YOLOX_HOOKS
        # the EMA variant is upstream's config, hooks and all
        assert plain(cfgs['ema'])['custom_hooks'] == upstream['custom_hooks']
    else:
        assert 'custom_hooks' not in baseline


# ---------------------------------------------------- built runners' hooks
def build_options(cfg: Config, root: str) -> dict:
    """Data pointed at ``root`` and no pretrained download; the model,
    schedule and hooks stay the config's."""
    return {
        k: v
        for k, v in smoke_cfg_options(cfg, root).items()
        if k.startswith(('train_dataloader', 'val_dataloader',
                         'test_dataloader', 'val_evaluator',
                         'test_evaluator', 'model.backbone.init_cfg'))
    }


@pytest.mark.parametrize('variant', VARIANTS)
@pytest.mark.parametrize('name', sorted(EXPERIMENTS))
def test_runner_has_the_intended_ema_hook(name, variant, coco, tmp_path):
    cfg = Config.fromfile(str(config_path(name, variant)))
    cfg.merge_from_dict(build_options(cfg, coco))
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    hooks = runner.hooks
    ema_hooks = [h for h in hooks if isinstance(h, EMAHook)]
    expected = expected_ema_hook(name, variant)
    if expected is None:
        assert ema_hooks == []
    else:
        (hook, ) = ema_hooks
        assert type(hook) is expected['cls']
        assert hook.ema_cfg['type'] == expected['ema_type']
        assert hook.ema_cfg['momentum'] == expected['momentum']
        assert get_priority(hook.priority) == get_priority(
            expected['priority'])
        if variant == 'sema':
            assert hook.momentum == expected['momentum']
            assert hook.buffers == expected['buffers']
            assert hook.schedule.per_epoch == expected['switches_per_epoch']
            assert (hook.schedule.interval, hook.schedule.by_epoch) == (1,
                                                                     True)
        else:
            assert hook.ema_cfg.get('update_buffers',
                                    False) == expected['update_buffers']
        # The averaged model builds (ExpMomentumEMA resolves in the mmdet
        # scope) and SwitchEMAHook finds no second EMA hook.
        hook.before_run(runner)
        assert type(hook.ema_model).__name__ == expected['ema_type']
        assert hook.ema_model.momentum == expected['momentum']
        assert hook.ema_model.update_buffers == expected['update_buffers']
    if name == 'yolox_s':
        names = [type(h).__name__ for h in hooks]
        switch, sync = (hooks[names.index(n)]
                        for n in ('YOLOXModeSwitchHook', 'SyncNormHook'))
        assert get_priority(switch.priority) == 48
        assert get_priority(sync.priority) == 48
        assert switch.num_last_epochs == 15
        if ema_hooks:  # after both, as upstream
            assert names.index(type(ema_hooks[0]).__name__) > names.index(
                'SyncNormHook')
    _, _, _, optimizer, lr = EXPERIMENTS[name]
    optim = runner.build_optim_wrapper(runner.optim_wrapper).optimizer
    assert type(optim).__name__ == optimizer
    assert optim.defaults['lr'] == lr
    if name == 'retinanet_swin':
        assert optim.defaults['weight_decay'] == 0.05
        assert 'momentum' not in optim.defaults
        decays = {g['weight_decay'] for g in optim.param_groups}
        assert decays == {0.0, 0.05}  # norms and position tables: none


# ------------------------------------------------- training the SEMA ones
# On top of smoke_cfg_options: fewer images for the slowest model (Cascade),
# a tiny Swin (Swin-T is not small at 64 px), and for YOLOX Mosaic and MixUp
# in epoch 1, switched off by YOLOXModeSwitchHook for epoch 2.
SMOKE = {
    'mask_rcnn': dict(masks=True),
    # 2 of the 4 images: 3 iterations per runner epoch (RepeatDataset x3)
    'cascade_ms_3x': dict(masks=True, extra={
        'train_dataloader.dataset.dataset.indices': 2,
        'val_dataloader.dataset.indices': 2,
        'test_dataloader.dataset.indices': 2,
    }),
    'retinanet_r50': dict(),
    'retinanet_swin': dict(extra={
        'model.backbone.embed_dims': 32,
        'model.backbone.depths': [2, 2, 2, 2],
        'model.backbone.num_heads': [1, 2, 4, 8],
        'model.neck.in_channels': [64, 128, 256],
    }),
    'yolox_s': dict(extra={'custom_hooks.0.num_last_epochs': 0}),
}


def smoke_cli(config: Path, root: str, extra: Optional[dict] = None,
              **kwargs) -> List[str]:
    cfg = Config.fromfile(str(config))
    options = smoke_cfg_options(cfg, root, **kwargs)
    options.update(extra or {})
    return ['--cfg-options'] + to_cli(options)


def assert_switches(output: str, switches_per_epoch: int = 1,
                    epochs: int = 2) -> None:
    for epoch in range(1, epochs + 1):
        n = epoch * switches_per_epoch
        assert (f'SwitchEMAHook: switch {n} at the end of epoch {epoch}'
                in output), output[-3000:]
    assert len(re.findall(r'SwitchEMAHook: switch \d+ at',
                          output)) == epochs * switches_per_epoch


def assert_checkpoint_holds_switched_ema(path: Path, epoch: int) -> None:
    """After a switch the model is the EMA: the checkpoint's ``state_dict``
    (the EMA) and ``ema_state_dict`` (the model) agree."""
    ckpt = load_ckpt(path)
    assert ckpt['meta']['epoch'] == epoch
    state, ema = ckpt['state_dict'], ckpt['ema_state_dict']
    names = [k for k in ema if k.startswith('module.')]
    assert len(names) > 100
    different = [
        k for k in names
        if ema[k].is_floating_point() and not torch.equal(
            ema[k], state[k[len('module.'):]])
    ]
    assert not different, different[:5]


@pytest.mark.parametrize('name', list(SMOKE))
def test_sema_trains_switches_and_tests(name, coco, tmp_path):
    spec = SMOKE[name]
    config = config_path(name, 'sema')
    work_dir = tmp_path / 'work_dir'
    options = smoke_cli(config, coco, spec.get('extra'))
    try:
        out = run([
            sys.executable,
            str(TOOLS / 'train.py'),
            str(config), '--work-dir',
            str(work_dir)
        ] + options, cwd=tmp_path)
        per_epoch = expected_ema_hook(name, 'sema')['switches_per_epoch']
        assert_switches(out, per_epoch)
        if per_epoch == 3:  # 3 iterations per runner epoch: 1 per pass
            for n, it in ((1, 1), (2, 2), (4, 4), (5, 5)):
                assert f'switch {n} at iteration {it}' in out
        if name == 'yolox_s':
            assert out.index('switch 1 at the end of epoch 1') < out.index(
                'No mosaic and mixup aug now!')
        metrics = ['coco/bbox_mAP', 'coco/bbox_mAP_50']
        if spec.get('masks'):
            metrics += ['coco/segm_mAP', 'coco/segm_mAP_50']
        records = val_records(work_dir)
        assert [r['step'] for r in records] == [1, 2]
        for record in records:
            for metric in metrics:
                assert 0 <= record[metric] <= 1, (metric, record)
        for epoch in (1, 2):
            assert f'Saving checkpoint at {epoch} epochs' in out
            assert (work_dir / f'epoch_{epoch}.pth').is_file()
        assert_checkpoint_holds_switched_ema(work_dir / 'epoch_2.pth', 2)
        # tools/test.py on the last checkpoint: the last validation again
        out = run([
            sys.executable,
            str(TOOLS / 'test.py'),
            str(config),
            str(work_dir / 'epoch_2.pth'), '--work-dir',
            str(tmp_path / 'test')
        ] + options, cwd=tmp_path)
        tested = printed_metrics(out)
        for metric in metrics:
            assert tested[metric] == pytest.approx(records[-1][metric])
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)  # ~1 GB of checkpoints


def test_mmdet_own_tools_train_and_test_a_sema_config(coco, tmp_path):
    """The drop-in promise: mmdet's own scripts, only ``custom_imports``
    in the config."""
    config = config_path('retinanet_r50', 'sema')
    work_dir = tmp_path / 'work_dir'
    options = smoke_cli(config, coco)
    try:
        out = run([
            sys.executable,
            str(MMDET_TOOLS / 'train.py'),
            str(config), '--work-dir',
            str(work_dir)
        ] + options, cwd=tmp_path)
        assert_switches(out)
        assert [r['step'] for r in val_records(work_dir)] == [1, 2]
        assert_checkpoint_holds_switched_ema(work_dir / 'epoch_2.pth', 2)
        out = run([
            sys.executable,
            str(MMDET_TOOLS / 'test.py'),
            str(config),
            str(work_dir / 'epoch_2.pth'), '--work-dir',
            str(tmp_path / 'test')
        ] + options, cwd=tmp_path)
        assert re.search(r'coco/bbox_mAP: [0-9.]+', out), out[-3000:]
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def test_dist_train_two_gloo_processes_stay_identical(coco, tmp_path):
    """``tools/dist_train.sh CONFIG 2``: RetinaNet (ResNet-18 backbone for
    speed) with SwitchEMAHook on two CPU processes; after each switch both
    ranks hold bit-identical weights and EMA (``tests.rank_probe``)."""
    config = tmp_path / 'retinanet_r18_sema_probe.py'
    base = config_path('retinanet_r50', 'sema')
    config.write_text(
        f'_base_ = {str(base)!r}\n'
        "custom_imports = dict(imports=['sema_mm', 'tests.rank_probe'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='SwitchEMAHook', momentum=1e-3), "
        "dict(type='RankProbeHook')]\n")
    work_dir = tmp_path / 'work_dir'
    options = smoke_cli(
        config, coco, {
            'model.backbone.depth': 18,
            'model.neck.in_channels': [64, 128, 256, 512]
        },
        batch_size=1)  # 2 images per rank, 2 iterations per epoch
    try:
        out = run(['bash', str(TOOLS / 'dist_train.sh'),
                   str(config), '2', '--work-dir',
                   str(work_dir)] + options,
                  cwd=tmp_path,
                  PORT=str(free_port()))
        assert 'world size 2 on the CPU, gloo backend' in out
        assert_switches(out)
        assert (work_dir / 'epoch_2.pth').is_file()
        for epoch in (1, 2):
            r0, r1 = (
                torch.load(work_dir / f'rank{rank}_epoch{epoch}.pth')
                for rank in (0, 1))
            assert r0['world_size'] == r1['world_size'] == 2
            assert r0['wrapper'] == 'MMDistributedDataParallel'
            assert r0['num_switches'] == r1['num_switches'] == epoch
            for key in ('model', 'ema'):
                assert sorted(r0[key]) == sorted(r1[key])
                different = [
                    n for n in r0[key]
                    if not torch.equal(r0[key][n], r1[key][n])
                ]
                assert not different, (key, different[:5])
            # switched: the model's parameters are the EMA
            for n, p in r0['model'].items():
                if 'module.' + n in r0['ema'] and p.is_floating_point():
                    assert torch.equal(p, r0['ema']['module.' + n]), n
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
