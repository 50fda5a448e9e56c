"""The comparison runner: variants of a config, runs over seeds, the table.

The runs train the toy model of :mod:`tests.toy` through a config file
(``custom_imports=['tests.toy']``) with mmengine's real Runner: 2 epochs x
2 seeds x 3 variants, a few seconds in all.
"""
import json
import math
import os
import os.path as osp
import statistics

import pytest
import torch
from mmengine.config import Config

from sema_mm.comparison import runner as compare_module
from sema_mm.comparison.results import (
    markdown_table,
    metric_rule,
    pick_metric,
    read_run,
    summarise_variant,
)
from sema_mm.comparison.runner import (
    FINISHED,
    Settings,
    compare,
    plan_runs,
    run_state,
)
from sema_mm.comparison.variants import (
    apply_variant,
    ema_hooks,
    parse_variant,
    parse_variants,
)
from sema_mm.studies import lookahead as lookahead_module
from sema_mm.studies.lookahead import Lookahead, PlainLookahead
from tests.toy import toy_config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DIGITS = osp.join(REPO, 'configs', 'demo', 'resnet_digits_sema.py')
METRIC = 'toy/accuracy'


def write_toy_config(directory) -> str:
    """The toy SEMA config as a file (2 epochs, momentum 0.2)."""
    cfg = toy_config('unused', log_level='WARNING')
    cfg.pop('work_dir')
    cfg['train_cfg'] = dict(by_epoch=True, max_epochs=2, val_interval=1)
    cfg['custom_imports'] = dict(imports=['tests.toy', 'sema_mm'],
                                 allow_failed_imports=False)
    path = osp.join(str(directory), 'toy_sema.py')
    Config(cfg).dump(path)
    return path


# --------------------------------------------------------------- variants
def test_parse_variant():
    v = parse_variant('SEMA:momentum=0.01,interval=4')
    assert v.kind == 'sema'
    assert v.options == dict(momentum=0.01, interval=4)
    assert v.label == 'SEMA (momentum=0.01, interval=4)'
    assert v.dirname == 'sema_momentum-0.01_interval-4'
    assert parse_variant('baseline').label == 'baseline'
    with pytest.raises(ValueError, match='unknown variant'):
        parse_variant('sam')
    with pytest.raises(ValueError, match='KEY=VALUE'):
        parse_variant('ema:0.1')
    with pytest.raises(ValueError, match='repeat'):
        parse_variants(['ema', 'EMA'])


def hook_types(cfg):
    return [h['type'] for h in cfg.get('custom_hooks', [])]


def test_apply_variants_to_the_digits_config():
    base = Config.fromfile(DIGITS)
    assert hook_types(base) == ['SwitchEMAHook']

    cfg = apply_variant(Config.fromfile(DIGITS), parse_variant('baseline'))
    assert ema_hooks(cfg) == [] and hook_types(cfg) == []

    cfg = apply_variant(Config.fromfile(DIGITS), parse_variant('ema'))
    assert cfg.custom_hooks == [
        dict(type='EMAHook', momentum=0.1, priority='ABOVE_NORMAL')
    ]  # the momentum of the config's own SwitchEMAHook
    cfg = apply_variant(Config.fromfile(DIGITS), parse_variant('ema'),
                        momentum=0.05)
    assert cfg.custom_hooks[0]['momentum'] == 0.05

    cfg = apply_variant(Config.fromfile(DIGITS),
                        parse_variant('sema:momentum=0.2,interval=2'))
    assert cfg.custom_hooks == [
        dict(type='SwitchEMAHook', momentum=0.2, interval=2)
    ]

    cfg = apply_variant(Config.fromfile(DIGITS), parse_variant('swa'))
    assert cfg.train_cfg.max_epochs == 15  # 1.25 x 12
    hook = cfg.custom_hooks[0]
    assert hook['ema_type'] == 'StochasticWeightAverage'
    assert hook['begin_epoch'] == 12 and hook['update_buffers']
    assert cfg.param_scheduler[-1] == dict(
        type='SWAConstantLR', factor=0.1, by_epoch=True, begin=12, end=15)
    assert 'sema_mm.studies.lr_schedules' in cfg.custom_imports.imports
    cfg = apply_variant(Config.fromfile(DIGITS),
                        parse_variant('swa:budget=1.0,start=0.5'))
    assert cfg.train_cfg.max_epochs == 12
    assert cfg.custom_hooks[0]['begin_epoch'] == 6

    cfg = apply_variant(Config.fromfile(DIGITS),
                        parse_variant('lookahead:k=3'))
    assert hook_types(cfg) == []
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'Lookahead' and opt.base_type == 'SGD'
    assert opt.lookahead_k == 3 and opt.lookahead_alpha == 0.5
    assert opt.lr == 0.1 and opt.momentum == 0.9
    assert 'sema_mm.studies.lookahead' in cfg.custom_imports.imports


def test_ema_variant_keeps_priority_and_ema_type():
    cfg = Config(dict(
        default_scope='mmengine',
        custom_hooks=[
            dict(type='SyncNormHook', priority=48),
            dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=1e-4,
                 priority=49),
        ]))
    out = apply_variant(cfg, parse_variant('sema:momentum=1e-3'))
    assert out.custom_hooks[0] == dict(type='SyncNormHook', priority=48)
    assert out.custom_hooks[1] == dict(
        type='SwitchEMAHook', momentum=1e-3, priority=49,
        ema_type='ExpMomentumEMA')


# ------------------------------------------------------------ the summary
def test_summary_of_hand_made_curves():
    curves = {0: {1: 50.0, 2: 70.0, 3: 60.0}, 1: {1: 40.0, 2: 80.0, 3: 90.0}}
    s = summarise_variant('SEMA', curves, rule='greater', wall_s=[1.0, 3.0])
    assert s.seeds == [0, 1]
    assert s.final == (75.0, pytest.approx(statistics.stdev([60, 90])))
    assert s.best == (80.0, pytest.approx(statistics.stdev([70, 90])))
    assert s.best_step == 2  # mean curve 45, 75, 75: the first best
    assert s.curve[2] == (75.0, pytest.approx(statistics.stdev([70, 80])))
    assert s.wall_s == (2.0, pytest.approx(math.sqrt(2)))
    base = summarise_variant('baseline', {0: {1: 1.0, 2: 70.0, 3: 70.0}})
    table = markdown_table([base, s], 'acc')
    row = table.splitlines()[-1].split(' | ')
    assert row[2] == '75.00 ± 21.21'
    assert row[5] == '+5.00'  # vs the baseline's final mean 70
    lower = summarise_variant('x', {0: {1: 3.0, 2: 1.0, 3: 2.0}},
                              rule='less')
    assert lower.best == (1.0, 0.0) and lower.best_step == 2
    assert metric_rule('val/loss') == 'less'
    assert metric_rule('accuracy/top1') == 'greater'


# ----------------------------------------------------- training the runs
@pytest.fixture(scope='module')
def toy_comparison(tmp_path_factory):
    """2 epochs x 2 seeds x (baseline, EMA, SEMA) of the toy config."""
    root = tmp_path_factory.mktemp('compare')
    config = write_toy_config(root)
    variants = parse_variants(['baseline', 'ema', 'sema'])
    work_root = str(root / 'work')
    torch.set_num_threads(1)
    results = compare(dict(toy=config), variants, [0, 1], work_root,
                      Settings(threads=1))
    return dict(config=config, variants=variants, work_root=work_root,
                results=results)


def test_table_matches_the_logged_scalars(toy_comparison):
    res = toy_comparison['results'][0]
    assert res.metric == METRIC and res.rule == 'greater'
    runs = plan_runs(dict(toy=toy_comparison['config']),
                     toy_comparison['variants'], [0, 1],
                     toy_comparison['work_root'])
    assert len(runs) == 6
    rows = {line.split(' | ')[0].strip('| '): line.split(' | ')
            for line in res.table.splitlines()[2:]}
    assert list(rows) == ['baseline', 'EMA', 'SEMA']
    finals = {}
    for summary in res.summaries:
        mine = [r for r in runs if r.variant.label == summary.label]
        logged = []
        for run in mine:
            log = read_run(run.work_dir)
            assert sorted(log.val) == [1, 2]  # one validation per epoch
            logged.append([log.val[e][METRIC] for e in (1, 2)])
        final = [v[-1] for v in logged]
        best = [max(v) for v in logged]
        finals[summary.label] = statistics.mean(final)
        assert summary.final == (pytest.approx(statistics.mean(final)),
                                 pytest.approx(statistics.stdev(final)))
        assert summary.best == (pytest.approx(statistics.mean(best)),
                                pytest.approx(statistics.stdev(best)))
        row = rows[summary.label]
        assert row[1] == '2'
        assert row[2] == (f'{statistics.mean(final):.2f} ± '
                          f'{statistics.stdev(final):.2f}')
        mean_curve = [statistics.mean(v[i] for v in logged) for i in (0, 1)]
        best_epoch = 1 if mean_curve[0] >= mean_curve[1] else 2
        assert row[4] == str(best_epoch)
    sema = rows['SEMA']
    assert sema[5] == f'{finals["SEMA"] - finals["baseline"]:+.2f}'
    assert sema[6] == f'{finals["SEMA"] - finals["EMA"]:+.2f}'
    # The same in results.md and results.json.
    root = toy_comparison['work_root']
    with open(osp.join(root, 'results.md')) as f:
        assert res.table in f.read()
    with open(osp.join(root, 'results.json')) as f:
        data = json.load(f)
    assert data[0]['metric'] == METRIC
    assert [v['label'] for v in data[0]['variants']] == list(rows)


def test_variants_train_as_configured(toy_comparison):
    root = toy_comparison['work_root']
    for dirname, hook in (('baseline', None), ('ema', 'EMAHook'),
                          ('sema', 'SwitchEMAHook')):
        cfg = Config.fromfile(
            osp.join(root, 'toy', dirname, 'seed1', 'compare_cfg',
                     'toy.py'))
        assert cfg.randomness.seed == 1
        assert hook_types(cfg) == ([] if hook is None else [hook])
    # EMA does not change training: same training losses as the baseline.
    base = read_run(osp.join(root, 'toy', 'baseline', 'seed0'))
    ema = read_run(osp.join(root, 'toy', 'ema', 'seed0'))
    assert [r['loss'] for r in base.train.values()] == pytest.approx(
        [r['loss'] for r in ema.train.values()])


def test_plot_is_written(toy_comparison):
    plot = toy_comparison['results'][0].plot
    assert plot == osp.join(toy_comparison['work_root'],
                            'toy_toy_accuracy.png')
    with open(plot, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert os.path.getsize(plot) > 10000


def test_finished_runs_are_skipped(toy_comparison, monkeypatch):
    root = toy_comparison['work_root']
    finished = osp.join(root, 'toy', 'sema', 'seed0', FINISHED)
    stamp = os.stat(finished).st_mtime_ns
    dirs = sorted(os.listdir(osp.dirname(finished)))

    def no_training(*args, **kwargs):
        raise AssertionError('a finished run was trained again')

    monkeypatch.setattr(compare_module, 'train_in_process', no_training)
    results = compare(
        dict(toy=toy_comparison['config']), toy_comparison['variants'],
        [0, 1], root, Settings(threads=1))
    assert os.stat(finished).st_mtime_ns == stamp
    assert sorted(os.listdir(osp.dirname(finished))) == dirs
    assert results[0].table == toy_comparison['results'][0].table


def test_changed_config_trains_again(toy_comparison, tmp_path):
    root = str(tmp_path / 'work')
    config = toy_comparison['config']
    variants = parse_variants(['sema'])
    compare(dict(toy=config), variants, [0], root, Settings(threads=1))
    run = plan_runs(dict(toy=config), variants, [0], root)[0]
    record = json.load(open(osp.join(run.work_dir, FINISHED)))
    # Another momentum is another config: the run is trained again.
    compare(dict(toy=config), variants, [0], root,
            Settings(threads=1, momentum=0.3))
    again = json.load(open(osp.join(run.work_dir, FINISHED)))
    assert again['digest'] != record['digest']
    assert run_state(run.work_dir, again['digest']) == 'finished'
    cfg = Config.fromfile(osp.join(run.work_dir, 'compare_cfg', 'toy.py'))
    assert cfg.custom_hooks[0]['momentum'] == 0.3
    assert len(read_run(run.work_dir).log_dirs) == 1  # old logs removed


def test_swa_and_lookahead_train(tmp_path):
    config = write_toy_config(tmp_path)
    results = compare(dict(toy=config),
                      parse_variants(['swa', 'lookahead:k=2']), [0],
                      str(tmp_path / 'work'), Settings(threads=1))
    swa, look = results[0].summaries
    assert sorted(swa.curve) == [1, 2, 3]  # 2 epochs x budget 1.25 -> 3
    assert sorted(look.curve) == [1, 2]
    log = read_run(str(tmp_path / 'work' / 'toy' / 'swa' / 'seed0'))
    # Epoch 3 holds the LR at 0.1 x the initial LR of 0.1.
    assert log.train[3]['lr'] == pytest.approx(0.01)
    assert pick_metric([log]) == METRIC


# ---------------------------------------------------------------- Lookahead
def _quadratic_steps(opt_factory, steps=7):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(3, 2))
    opt = opt_factory([w])
    history = []
    for _ in range(steps):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
        history.append(w.detach().clone())
    return history, opt


def test_plain_lookahead_follows_the_rule():
    lr, k, alpha = 0.1, 3, 0.5
    hist, opt = _quadratic_steps(
        lambda p: PlainLookahead(torch.optim.SGD(p, lr=lr), alpha, k))
    torch.manual_seed(0)
    w = torch.randn(3, 2)
    slow = None
    for step in range(1, 8):
        w = w - lr * 2 * w
        if step % k == 0:
            slow = w.clone() if slow is None else slow
            slow = slow + alpha * (w - slow)
            w = slow.clone()
        assert torch.allclose(hist[step - 1], w, atol=1e-6)
    assert opt.param_groups[0]['lookahead_step'] == 7


@pytest.mark.skipif(lookahead_module.timm_lookahead() is None,
                    reason='timm is not installed')
def test_plain_lookahead_matches_timm():
    timm_cls = lookahead_module.timm_lookahead()
    mine, _ = _quadratic_steps(lambda p: PlainLookahead(
        torch.optim.SGD(p, lr=0.1, momentum=0.9), 0.5, 3))
    theirs, _ = _quadratic_steps(lambda p: timm_cls(
        torch.optim.SGD(p, lr=0.1, momentum=0.9), 0.5, 3))
    for a, b in zip(mine, theirs):
        assert torch.equal(a, b)


def test_registered_lookahead_builds_its_base_optimizer():
    w = torch.nn.Parameter(torch.ones(2))
    opt = Lookahead([w], base_type='SGD', lookahead_k=2, lr=0.5,
                    momentum=0.9)
    assert isinstance(opt._base_optimizer, torch.optim.SGD)
    assert opt.param_groups[0]['lr'] == 0.5
    assert opt.param_groups[0]['lookahead_k'] == 2
    assert opt.implementation in ('timm', 'sema_mm')


def test_runs_with_two_processes(tmp_path):
    """--gpus 2: each run is started by tools/dist_train.sh (gloo on a
    machine without GPUs) and read back like any other."""
    config = write_toy_config(tmp_path)
    env = {k: os.environ.get(k) for k in ('CUDA_VISIBLE_DEVICES', 'PORT')}
    os.environ['CUDA_VISIBLE_DEVICES'] = ''
    os.environ.pop('PORT', None)
    try:
        results = compare(dict(toy=config), parse_variants(['sema']), [0],
                          str(tmp_path / 'work'), Settings(gpus=2))
    finally:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    run_dir = tmp_path / 'work' / 'toy' / 'sema' / 'seed0'
    # The config mmengine dumped for the run: started by torchrun.
    assert "launcher = 'pytorch'" in (run_dir / 'toy.py').read_text()
    assert (run_dir / 'train.log').is_file()
    assert sorted(results[0].summaries[0].curve) == [1, 2]
    assert (run_dir / FINISHED).is_file()


def test_interrupted_run_resumes(tmp_path):
    config = write_toy_config(tmp_path)
    variants = parse_variants(['sema'])
    root = str(tmp_path / 'work')
    compare(dict(toy=config), variants, [0], root, Settings(threads=1))
    run = plan_runs(dict(toy=config), variants, [0], root)[0]
    done = read_run(run.work_dir)
    # As if the run had died during epoch 2.
    os.remove(osp.join(run.work_dir, FINISHED))
    os.remove(osp.join(run.work_dir, 'epoch_2.pth'))
    with open(osp.join(run.work_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(run.work_dir, 'epoch_1.pth'))
    assert run_state(run.work_dir, json.load(open(osp.join(
        run.work_dir, 'started.json')))['digest']) == 'partial'
    results = compare(dict(toy=config), variants, [0], root,
                      Settings(threads=1))
    again = read_run(run.work_dir)
    assert sorted(again.val) == [1, 2]
    # Epoch 1 was not trained again: its training lines were logged once
    # (the resumed start may share the first start's log dir, whose
    # scalars.json is appended to, when both began in the same second).
    epoch1 = 0
    for log_dir in again.log_dirs:
        with open(osp.join(log_dir, 'vis_data', 'scalars.json')) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        epoch1 += sum(r.get('epoch') == 1 and 'iter' in r for r in rows)
    assert epoch1 == 8  # 32 samples, batch 4, one line per iteration
    # Resuming from epoch 1 ends where the uninterrupted run ended.
    assert again.val[2][METRIC] == pytest.approx(done.val[2][METRIC])
    assert results[0].summaries[0].final[0] == pytest.approx(
        done.val[2][METRIC])
