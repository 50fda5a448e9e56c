"""SwitchEMAHook is found from the codebases' scopes via custom_imports."""
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from tests.utils import make_runner, sema_hook


@pytest.mark.parametrize('scope', ['mmdet', 'mmpretrain'])
def test_custom_imports_registers_hook_in_scope(tmp_path, scope):
    pytest.importorskip(scope)
    from importlib import import_module
    hooks = import_module(f'{scope}.registry').HOOKS
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(
        f"default_scope = '{scope}'\n"
        "custom_imports = dict(imports=['sema_mm'], "
        "allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='SwitchEMAHook', momentum=1e-3)]\n")
    cfg = Config.fromfile(str(cfg_file))
    with DefaultScope.overwrite_default_scope(scope):
        hook = hooks.build(cfg.custom_hooks[0])
    assert type(hook).__name__ == 'SwitchEMAHook'


def test_mmdet_exp_momentum_ema_as_ema_type(tmp_path):
    """mmdet's ExpMomentumEMA (as in YOLOX) works as the averaged model."""
    pytest.importorskip('mmdet')
    import mmdet.models  # noqa: F401  (registers ExpMomentumEMA)
    runner = make_runner(
        tmp_path, default_scope='mmdet',
        custom_hooks=[dict(type='SwitchEMAHook', momentum=0.2,
                           ema_type='ExpMomentumEMA', gamma=4)])
    runner.train()
    hook = sema_hook(runner)
    assert type(hook.ema_model).__name__ == 'ExpMomentumEMA'
    assert hook.num_switches == 4


def test_mmpretrain_ema_hook_is_refused_next_to_switch_ema(tmp_path):
    """Under the mmpretrain scope `EMAHook` is mmpretrain's subclass; it is
    still recognised as a second EMA hook."""
    pytest.importorskip('mmpretrain')
    import mmpretrain.engine  # noqa: F401
    runner = make_runner(
        tmp_path, default_scope='mmpretrain',
        custom_hooks=[dict(type='SwitchEMAHook', momentum=0.2),
                      dict(type='EMAHook', momentum=1e-4)])
    with pytest.raises(ValueError, match=r'another EMA hook \(EMAHook\)'):
        runner.train()
