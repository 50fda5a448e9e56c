"""Self-supervised configs under the mmselfsup 1.0.0 scope.

These run only in the optional environment with mmselfsup 1.0.0, mmcls
1.0.0rc6 and mmcv 2.0.1 (``tools/setup_mmselfsup_env.sh`` creates
``.venv-mmselfsup``); mmselfsup cannot share an environment with mmpretrain
1.2.0 and mmcv 2.1.0, so in the main environment the module is skipped::

    bash tools/setup_mmselfsup_env.sh
    PYTHONPATH=. .venv-mmselfsup/bin/python -m pytest tests/test_mmselfsup.py

The checks mirror ``tests/test_selfsup.py`` (whose probe hooks and helpers
they reuse): hooks and momenta (mmselfsup's models take a *decay*, the hooks
mmengine's ``momentum = 1 - alpha``), a Runner for every config on the
digits, 2 epochs of every SEMA config through ``tools/train.py`` with a
switch per epoch, bit-exact teacher replay for MoCo v2, BYOL and MoCo v3
with and without ``SwitchEMAHook`` ("Basic" copies), and linear probes
(mmcls scope) of SimCLR and MAE on the saved EMA backbone.
"""
import glob
import os.path as osp

import pytest

try:
    import mmcls  # noqa: F401
    import mmselfsup  # noqa: F401
except Exception as e:  # ImportError, or its mmcv version assertion
    pytest.skip(
        'mmselfsup 1.0.0 is not importable here '
        f'({type(e).__name__}: {e}); these tests run in the environment of '
        '`bash tools/setup_mmselfsup_env.sh` (.venv-mmselfsup)',
        allow_module_level=True)

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402

from tests.test_selfsup import (  # noqa: E402
    PROBE_IMPORTS,
    SWITCH_LINE,
    build_runner,
    check_built_hooks,
    check_switched,
    check_teacher_probe,
    digits_config,
    ema_hook_type,
    run_train,
    top1,
)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the configs' own imports (custom_imports is replaced whole) and the probes
IMPORTS = dict(
    PROBE_IMPORTS,
    imports=PROBE_IMPORTS['imports'] + ['sema_mm.compat.mmselfsup'])
CONFIGS = osp.join(REPO, 'configs', 'selfsup_mmselfsup')
METHODS = {
    'simclr': ('simclr_resnet50_16xb256-coslr-200e_in1k', 'cl', None),
    'mocov2': ('mocov2_resnet50_8xb32-coslr-200e_in1k', 'teacher',
               'encoder_k'),
    'byol': ('byol_resnet50_16xb256-coslr-200e_in1k', 'teacher',
             'target_net'),
    'barlowtwins': ('barlowtwins_resnet50_8xb256-coslr-300e_in1k', 'cl',
                    None),
    'mocov3': ('mocov3_vit-small-p16_16xb256-amp-coslr-300e_in1k', 'teacher',
               'momentum_encoder'),
    'simmim': ('simmim_swin-base_8xb256-amp-coslr-100e_in1k-192', 'mim',
               None),
    'mae': ('mae_vit-base-p16_8xb512-amp-coslr-300e_in1k', 'mim', None),
}
EMA_MOMENTUM = dict(cl=4e-5, mim=1e-3)
SEMA_MOMENTUM = dict(cl=1e-4, mim=1e-3)
# mmselfsup's own convention: a decay (the opposite of mmengine's)
UPSTREAM_TEACHER = dict(
    mocov2=('momentum', 0.999),
    byol=('base_momentum', 0.99),
    mocov3=('base_momentum', 0.99))
LINEAR = {
    'simclr': 'simclr/benchmarks/resnet50_8xb512-linear-coslr-90e_in1k.py',
    'mae': 'mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py',
}


def variants(kind):
    return ['basic', 'ema', 'sema'] if kind == 'teacher' else [
        'baseline', 'ema', 'sema'
    ]


def all_configs():
    """Every config, the shared ``_base_`` files aside."""
    return sorted(
        p for p in glob.glob(osp.join(CONFIGS, '**', '*.py'), recursive=True)
        if '_base_' not in osp.relpath(p, CONFIGS).split(osp.sep))


@pytest.fixture(scope='module')
def pretrained():
    return {}


def test_versions():
    import mmcv
    assert mmselfsup.__version__ == '1.0.0'
    assert mmcls.__version__ == '1.0.0rc6'
    assert mmcv.__version__.startswith('2.0.')


@pytest.mark.parametrize('folder', sorted(METHODS))
def test_pretrain_hooks_and_momenta(folder):
    stem, kind, teacher = METHODS[folder]
    for variant in variants(kind):
        cfg = Config.fromfile(osp.join(CONFIGS, folder,
                                       f'{stem}_{variant}.py'))
        assert cfg.default_scope == 'mmselfsup'
        hooks = [h['type'] for h in cfg.get('custom_hooks', [])]
        if variant == 'baseline' or (variant == 'ema' and teacher):
            assert hooks == []
        elif variant == 'basic':
            assert hooks == ['CopyTeacherHook']
        elif variant == 'ema':
            assert hooks == ['EMAHook']
            assert cfg.custom_hooks[0].momentum == EMA_MOMENTUM[kind]
        elif teacher:
            assert hooks == ['SwitchEMAHook']
            assert cfg.custom_hooks[0].teacher == 'auto'
        else:
            assert hooks == ['SwitchEMAHook']
            assert cfg.custom_hooks[0].momentum == SEMA_MOMENTUM[kind]
        if teacher:
            key, value = UPSTREAM_TEACHER[folder]
            assert cfg.model[key] == value
        collate = cfg.train_dataloader.get('collate_fn')
        assert not isinstance(collate, dict) or '_scope_' not in collate


@pytest.mark.parametrize('size', ['full', 'digits'])
@pytest.mark.parametrize(
    'config', [osp.relpath(p, REPO) for p in all_configs()],
    ids=lambda p: osp.relpath(p, 'configs/selfsup_mmselfsup'))
def test_config_builds_runner(config, size, digits, tmp_path):
    """As written (full-size model) and on the digits."""
    cfg_file = osp.join(REPO, config) if size == 'full' else digits_config(
        osp.join(REPO, config), str(tmp_path), digits)
    runner = build_runner(cfg_file, str(tmp_path / 'work'))
    if '/benchmarks/' in config:
        assert runner.cfg.default_scope == 'mmcls'
        # built by the runner of _base_/mmcls_benchmark.py, in mmcls's scope
        assert type(runner).__name__ == 'MMSelfSupBenchmarkRunner'
        assert runner.cfg.model._scope_ == 'mmcls'
        if size == 'full':  # the digits' dataset replaces upstream's
            assert runner.cfg.train_dataloader.dataset._scope_ == 'mmcls'
    check_built_hooks(runner, config, ema_hook_type('mmselfsup'))


@pytest.mark.parametrize('folder', sorted(METHODS))
def test_sema_pretrains_and_switches(folder, digits, pretrained,
                                     tmp_path_factory):
    stem, kind, teacher = METHODS[folder]
    root = tmp_path_factory.mktemp(f'mmselfsup_sema_{folder}')
    config = osp.join(CONFIGS, folder, f'{stem}_sema.py')
    hooks = [dict(h) for h in Config.fromfile(config).custom_hooks]
    hooks += ([dict(type='TeacherProbeHook'),
               dict(type='TeacherSnapshotHook')]
              if teacher else [dict(type='RankProbeHook')])
    cfg_file = digits_config(config, str(root), digits,
                             custom_imports=IMPORTS,
                             custom_hooks=hooks)
    work_dir = str(root / 'work')
    out = run_train(cfg_file, work_dir)
    assert SWITCH_LINE.format(1, 1) in out
    assert SWITCH_LINE.format(2, 2) in out
    pretrained[folder] = osp.join(work_dir, 'epoch_2.pth')
    if teacher:
        check_teacher_probe(work_dir, num_switches=True)
    else:
        check_switched(work_dir)


@pytest.mark.parametrize('folder', ['mocov2', 'byol', 'mocov3'])
@pytest.mark.parametrize('variant', ['ema', 'basic'])
def test_teacher_is_the_models_own(folder, variant, digits, tmp_path):
    stem = METHODS[folder][0]
    config = osp.join(CONFIGS, folder, f'{stem}_{variant}.py')
    hooks = [dict(type='TeacherProbeHook')]
    if variant == 'basic':
        hooks.insert(0, dict(type='CopyTeacherHook'))
    cfg_file = digits_config(config, str(tmp_path), digits,
                             custom_imports=IMPORTS,
                             custom_hooks=hooks)
    runner = build_runner(cfg_file, str(tmp_path / 'work'))
    runner.train()
    check_teacher_probe(str(tmp_path / 'work'), num_switches=False,
                        copies=variant == 'basic')


@pytest.mark.parametrize('folder', sorted(LINEAR))
def test_linear_probe_on_saved_ema_backbone(folder, digits, pretrained,
                                            tmp_path):
    from sema_mm.selfsup import backbone_state_dict
    if folder not in pretrained:
        pytest.skip(f'the SEMA pre-training of {folder} did not run')
    ckpt = pretrained[folder]
    cfg_file = digits_config(osp.join(CONFIGS, LINEAR[folder]),
                             str(tmp_path), digits)
    work_dir = str(tmp_path / 'linear')
    out = run_train(cfg_file, work_dir,
                    f'model.backbone.init_cfg.checkpoint={ckpt}')
    assert len(top1(out)) == 2
    ema_backbone = backbone_state_dict(ckpt)
    probed = backbone_state_dict(osp.join(work_dir, 'epoch_2.pth'))
    shared = [k for k, v in probed.items() if v.is_floating_point()
              and k in ema_backbone and 'running_' not in k]
    assert len(shared) > 10
    for key in shared:
        assert torch.equal(probed[key], ema_backbone[key]), key
