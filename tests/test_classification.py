"""Classification configs (mmpretrain 1.2.0): baseline, EMA and SEMA.

Every config of ``configs/classification`` is checked for its single EMA-type
hook and Table A1's momentum, and builds its Runner as written (full-size
model) and on the embedded digits (tiny architecture of the same family, see
:mod:`sema_mm.datasets.digits_config`). The SEMA variant of each model family
(ResNet, DeiT/ViT, Swin, ConvNeXt) trains 2 epochs through ``tools/train.py``
in a subprocess: it switches at the end of each epoch (the model then holds the
EMA, checked by ``tests.rank_probe``) and validates top-1. The CIFAR-100
ResNet-18 SEMA config trains through mmpretrain's own ``tools/train.py``.
"""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from tests.test_selfsup import (
    SWITCH_LINE,
    build_runner,
    check_switched,
    digits_config,
    load,
    run_train,
    top1,
)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs', 'classification')
MMPRETRAIN_TRAIN = osp.join(
    osp.dirname(__import__('mmpretrain').__file__), '.mim', 'tools',
    'train.py')
# (folder, config stem, EMA momentum, SEMA momentum): Table A1 as 1 - alpha
FAMILIES = [
    ('resnet', 'resnet50_8xb32-coslr_in1k', 1e-4, 1e-3),
    ('deit', 'deit-small_4xb256_in1k', 1e-4, 1e-3),
    ('deit', 'deit-tiny_4xb256_in1k', 1e-4, 1e-3),
    ('swin', 'swin-tiny_16xb64_in1k', 1e-4, 1e-3),
    ('convnext', 'convnext-tiny_32xb128_in1k', 1e-4, 1e-3),
    ('cifar100', 'resnet18_8xb16_cifar100', 1e-2, 1e-2),
]
PROBE = dict(
    custom_imports=dict(
        imports=['sema_mm', 'tests.rank_probe'], allow_failed_imports=False))


def all_configs():
    return sorted(glob.glob(osp.join(CONFIGS, '**', '*.py'), recursive=True))


def test_every_family_has_three_variants():
    found = {osp.relpath(p, CONFIGS) for p in all_configs()}
    expected = {
        f'{folder}/{stem}_{v}.py'
        for folder, stem, _, _ in FAMILIES
        for v in ('baseline', 'ema', 'sema')
    }
    assert expected == found


@pytest.mark.parametrize('folder, stem, ema_m, sema_m', FAMILIES,
                         ids=[f[1] for f in FAMILIES])
def test_one_ema_hook_with_table_a1_momentum(folder, stem, ema_m, sema_m):
    """custom_hooks is replaced whole: baseline none (ConvNeXt drops
    upstream's EMAHook), EMA one EMAHook, SEMA one SwitchEMAHook."""
    for variant in ('baseline', 'ema', 'sema'):
        cfg = Config.fromfile(osp.join(CONFIGS, folder,
                                       f'{stem}_{variant}.py'))
        assert cfg.default_scope == 'mmpretrain'
        assert cfg.custom_imports == dict(
            imports=['sema_mm'], allow_failed_imports=False)
        hooks = cfg.get('custom_hooks', [])
        if variant == 'baseline':
            assert not any('EMA' in h['type'] for h in hooks)
        else:
            assert len(hooks) == 1
            hook = hooks[0]
            assert hook.type == ('EMAHook'
                                 if variant == 'ema' else 'SwitchEMAHook')
            assert hook.momentum == (ema_m if variant == 'ema' else sema_m)


def test_cifar100_recipe():
    cfg = Config.fromfile(
        osp.join(CONFIGS, 'cifar100', 'resnet18_8xb16_cifar100_sema.py'))
    assert cfg.model.backbone.type == 'ResNet_CIFAR'
    assert cfg.model.backbone.depth == 18
    assert cfg.model.head.num_classes == 100
    assert cfg.train_dataloader.dataset.type == 'CIFAR100'
    assert cfg.train_dataloader.batch_size * 8 == 128
    assert cfg.train_cfg.max_epochs == 200
    assert cfg.optim_wrapper.optimizer.weight_decay == 5e-4
    assert cfg.param_scheduler.milestones == [60, 120, 160]
    assert cfg.param_scheduler.gamma == 0.2


@pytest.mark.parametrize('size', ['full', 'digits'])
@pytest.mark.parametrize(
    'config', [osp.relpath(p, REPO) for p in all_configs()],
    ids=lambda p: osp.relpath(p, 'configs/classification'))
def test_config_builds_runner(config, size, digits, tmp_path):
    """The Runner builds, as written (ImageNet / CIFAR-100 model; no data is
    read before training) and on the digits (tiny model, no pretrained
    weights), with exactly the intended EMA-type hook: mmpretrain's EMAHook
    for ``_ema``."""
    from mmpretrain.engine.hooks import EMAHook

    from sema_mm.hooks import SwitchEMAHook
    if size == 'full':
        cfg_file = osp.join(REPO, config)
        classes = 100 if '/cifar100/' in config else 1000
    else:
        cfg_file = digits_config(osp.join(REPO, config), str(tmp_path),
                                 digits)
        classes = 10
    runner = build_runner(cfg_file, str(tmp_path / 'work'))
    assert type(runner.model).__name__ == 'ImageClassifier'
    assert runner.model.head.num_classes == classes
    ema = [type(h) for h in runner.hooks if 'EMAHook' in type(h).__name__]
    variant = config[:-3].rsplit('_', 1)[1]
    assert ema == {'baseline': [], 'ema': [EMAHook],
                   'sema': [SwitchEMAHook]}[variant]


@pytest.mark.parametrize('folder, stem', [
    ('resnet', 'resnet50_8xb32-coslr_in1k'),
    ('deit', 'deit-small_4xb256_in1k'),
    ('swin', 'swin-tiny_16xb64_in1k'),
    ('convnext', 'convnext-tiny_32xb128_in1k'),
])
def test_sema_trains_switches_and_validates(folder, stem, digits, tmp_path):
    """2 epochs through tools/train.py: two switches, two top-1 values."""
    config = osp.join(CONFIGS, folder, f'{stem}_sema.py')
    hooks = [dict(h) for h in Config.fromfile(config).custom_hooks]
    cfg_file = digits_config(
        config, str(tmp_path), digits,
        custom_hooks=hooks + [dict(type='RankProbeHook')], **PROBE)
    work_dir = str(tmp_path / 'work')
    out = run_train(cfg_file, work_dir)
    assert SWITCH_LINE.format(1, 1) in out
    assert SWITCH_LINE.format(2, 2) in out
    accuracy = top1(out)
    assert len(accuracy) == 2 and all(0 <= a <= 100 for a in accuracy)
    check_switched(work_dir)


def test_cifar100_sema_with_mmpretrain_train_py(digits, tmp_path):
    """mmpretrain's own tools/train.py runs the SEMA config: the config's
    ``custom_imports`` is all it needs."""
    assert osp.isfile(MMPRETRAIN_TRAIN)
    config = osp.join(CONFIGS, 'cifar100', 'resnet18_8xb16_cifar100_sema.py')
    cfg_file = digits_config(config, str(tmp_path), digits)
    work_dir = str(tmp_path / 'work')
    out = run_train(cfg_file, work_dir, script=MMPRETRAIN_TRAIN)
    assert SWITCH_LINE.format(1, 1) in out
    assert SWITCH_LINE.format(2, 2) in out
    assert len(top1(out)) == 2
    ckpt = load(osp.join(work_dir, 'epoch_2.pth'))
    assert 'ema_state_dict' in ckpt
