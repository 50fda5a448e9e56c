"""``tools/test.py`` with the options of mmpretrain's and mmdet's own test
tools (visualization, TTA, ``--out-item``), on the digits demo config
(mmpretrain) trained for one epoch, and their errors elsewhere."""
import argparse
import pickle

import pytest
from mmengine.config import Config

from sema_mm.cli import CODEBASES
from sema_mm.cli.test_options import add_test_view_args, merge_test_view_args
from tests.test_tools import REPO, TOOLS, run

DEMO = REPO / 'configs' / 'demo' / 'resnet_digits_sema.py'


def data_options(root: str) -> list:
    return [f'{loader}.dataset.data_root={root}'
            for loader in ('train_dataloader', 'val_dataloader',
                           'test_dataloader')]


@pytest.fixture(scope='module')
def checkpoint(digits, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('demo')
    run(['python', str(TOOLS / 'train.py'), str(DEMO), '--work-dir',
         str(work_dir), '--cfg-options', 'train_cfg.max_epochs=1',
         *data_options(digits)], work_dir, timeout=600, OMP_NUM_THREADS='1')
    return work_dir / 'epoch_1.pth'


def test_show_dir_tta_and_out_item(checkpoint, digits, tmp_path):
    """``--show-dir`` writes painted images (every ``--interval``-th
    sample) and ``--out-item metrics`` dumps the metrics; ``--tta`` tests
    the flip-TTA model and ``--out`` dumps its predictions."""
    def test(*options):
        return run(['python', str(TOOLS / 'test.py'), str(DEMO),
                    str(checkpoint), '--work-dir', str(tmp_path), *options,
                    '--cfg-options', 'test_dataloader.dataset.indices=20',
                    *data_options(digits)],
                   tmp_path, timeout=600, OMP_NUM_THREADS='1').stdout

    out = tmp_path / 'metrics.pkl'
    assert 'Test metrics: accuracy/top1' in test(
        '--show-dir', str(tmp_path / 'vis'), '--interval', '5', '--out',
        str(out), '--out-item', 'metrics')
    with open(out, 'rb') as f:
        assert set(pickle.load(f)) == {'accuracy/top1'}
    assert len(list((tmp_path / 'vis').glob('*.png'))) == 4  # 20 / 5
    preds = tmp_path / 'preds.pkl'
    assert 'Test metrics: accuracy/top1' in test('--tta', '--out',
                                                 str(preds))
    with open(preds, 'rb') as f:
        assert len(pickle.load(f)) == 20
    cfg = Config.fromfile(str(tmp_path / DEMO.name))  # the runner's dump
    assert cfg.model.type == 'mmpretrain.AverageClsScoreTTA'
    assert cfg.test_dataloader.dataset.pipeline[-1].type == 'TestTimeAug'


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument('--out')
    add_test_view_args(parser)
    return parser.parse_args(list(argv))


def test_options_a_codebase_lacks_fail_with_a_message():
    cfg = Config(dict(default_hooks=dict(), test_dataloader=dict(
        dataset=dict(pipeline=[dict(type='Pack')]))))
    with pytest.raises(ValueError, match='--out-item needs --out'):
        merge_test_view_args(cfg, parse('--out-item', 'metrics'),
                             CODEBASES['mmengine'])
    with pytest.raises(ValueError, match='need an mmdet or mmpretrain'):
        merge_test_view_args(cfg, parse('--show'), CODEBASES['mmengine'])
    with pytest.raises(ValueError, match='no `default_hooks.visualization`'):
        merge_test_view_args(cfg, parse('--show-dir', 'x'),
                             CODEBASES['mmdet'])
    with pytest.raises(ValueError, match='has no default one'):
        merge_test_view_args(cfg, parse('--tta'), CODEBASES['mmengine'])
    with pytest.raises(ValueError, match='cannot draw test-time-augmented'):
        merge_test_view_args(cfg, parse('--tta', '--show'),
                             CODEBASES['mmpretrain'])


def test_mmdet_options_as_upstream():
    cfg = Config(dict(
        default_hooks=dict(visualization=dict(type='DetVisualizationHook')),
        model=dict(type='RetinaNet'),
        test_dataloader=dict(dataset=dict(pipeline=[
            dict(type='LoadImageFromFile'), dict(type='PackDetInputs')]))))
    merge_test_view_args(cfg, parse('--show-dir', 'vis', '--tta', '--amp',
                                    '--no-pin-memory'), CODEBASES['mmdet'])
    hook = cfg.default_hooks.visualization
    assert hook.draw is True and hook.test_out_dir == 'vis'
    assert cfg.model.type == 'DetTTAModel'
    assert cfg.model.module.type == 'RetinaNet'
    tta = cfg.test_dataloader.dataset.pipeline[-1]
    assert tta.type == 'TestTimeAug'
    assert tta.transforms[1][0].type == 'PackDetInputs'
    assert cfg.test_cfg.fp16 is True
    assert cfg.test_dataloader.pin_memory is False
