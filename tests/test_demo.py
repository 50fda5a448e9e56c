"""The README's demo: the digits writer, the demo configs and tools/demo.py.
"""
import hashlib
import importlib.util
import json
import math
import os
import os.path as osp
import subprocess
import sys
import uuid

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from sema_mm.datasets.digits import CLASSES, make_digits, split_digits

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(REPO, 'tools', 'demo.py')
CONFIGS = osp.join(REPO, 'configs', 'demo')
NUM_DIGITS = 1797  # images in sklearn.datasets.load_digits


def load_demo():
    """tools/demo.py as a module."""
    spec = importlib.util.spec_from_file_location('sema_demo', DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree_digest(root: str) -> dict:
    """Relative path -> sha1 of every PNG under the splits of ``root``."""
    digest = {}
    for split in ('train', 'val'):
        for folder, _, files in os.walk(osp.join(root, split)):
            for name in files:
                path = osp.join(folder, name)
                with open(path, 'rb') as f:
                    digest[osp.relpath(path, root)] = hashlib.sha1(
                        f.read()).hexdigest()
    return digest


@pytest.fixture(scope='module')
def small_digits(tmp_path_factory):
    """A 100-image training set with 20 % label noise."""
    root = str(tmp_path_factory.mktemp('digits') / 'small')
    return make_digits(root, train_size=100, label_noise=0.2, seed=1)


def test_split_is_stratified_and_disjoint():
    labels = np.repeat(np.arange(10), 50)
    full = split_digits(labels, val_fraction=0.3, seed=3)
    assert len(full['val']) == 150 and len(full['train']) == 350
    assert not set(full['train']) & set(full['val'])
    assert np.bincount(labels[full['val']]).tolist() == [15] * 10
    assert len(full['noisy']) == 0
    assert (full['train_labels'] == labels[full['train']]).all()

    noisy = split_digits(labels, train_size=55, label_noise=0.2, seed=3)
    assert len(noisy['train']) == 55 and len(noisy['noisy']) == 11
    # The round-robin subset is balanced to within one image per class.
    counts = np.bincount(labels[noisy['train']], minlength=10)
    assert counts.max() - counts.min() <= 1
    changed = noisy['train_labels'] != labels[noisy['train']]
    assert np.flatnonzero(changed).tolist() == noisy['noisy'].tolist()
    # val does not depend on the subset or the noise.
    assert noisy['val'].tolist() == full['val'].tolist()


def test_digits_folder_layout_and_counts(small_digits):
    info = small_digits
    root = info['root']
    assert info['written']
    assert info['num_train'] == 100 and info['num_noisy'] == 20
    assert info['num_val'] == sum(info['val_per_class'])
    assert 100 + info['num_val'] < NUM_DIGITS  # the rest is left out
    for split in ('train', 'val'):
        assert sorted(os.listdir(osp.join(root, split))) == list(CLASSES)
    digest = tree_digest(root)
    assert len(digest) == 100 + info['num_val']
    assert sum(k.startswith('train') for k in digest) == 100
    with open(osp.join(root, 'meta.json')) as f:
        meta = json.load(f)
    assert len(meta['noisy']) == 20
    for item in meta['noisy']:
        # Filed under a wrong class.
        assert osp.isfile(osp.join(root, item['file']))
        assert item['file'].split('/')[1] != str(item['true_label'])
    from PIL import Image
    image = Image.open(osp.join(root, next(iter(digest))))
    assert image.size == (32, 32) and image.mode == 'L'


def test_digits_are_deterministic_and_idempotent(small_digits, tmp_path):
    again = make_digits(
        str(tmp_path / 'again'), train_size=100, label_noise=0.2, seed=1)
    assert tree_digest(again['root']) == tree_digest(small_digits['root'])
    other = make_digits(
        str(tmp_path / 'other'), train_size=100, label_noise=0.2, seed=2)
    assert tree_digest(other['root']) != tree_digest(small_digits['root'])

    # Same parameters: nothing is written.
    root = again['root']
    meta = osp.join(root, 'meta.json')
    stamp = os.stat(meta).st_mtime_ns
    skipped = make_digits(root, train_size=100, label_noise=0.2, seed=1)
    assert not skipped['written'] and os.stat(meta).st_mtime_ns == stamp
    assert skipped['num_noisy'] == 20
    # Other parameters: the folder is rewritten.
    clean = make_digits(root, train_size=120, seed=1)
    assert clean['written'] and clean['num_noisy'] == 0
    assert sum(k.startswith('train') for k in tree_digest(root)) == 120


def test_digits_refuse_foreign_folder(tmp_path):
    os.makedirs(tmp_path / 'train' / 'cat')
    with pytest.raises(FileExistsError, match='overwrite'):
        make_digits(str(tmp_path), train_size=10)
    with pytest.raises(ValueError, match='label_noise'):
        make_digits(str(tmp_path / 'x'), label_noise=1.0)


def test_sema_momentum_keeps_pullback_warning_silent():
    cfg = Config.fromfile(osp.join(CONFIGS, 'resnet_digits_sema.py'))
    hook = cfg.custom_hooks[0]
    assert hook.type == 'SwitchEMAHook'
    updates = math.ceil(1258 / cfg.train_dataloader.batch_size)
    assert (1 - hook.momentum)**updates <= 0.5
    # The demo test below trains on 200 images: 7 updates per epoch.
    assert (1 - hook.momentum)**math.ceil(200 / 32) <= 0.5


@pytest.mark.parametrize('name, hook', [
    ('resnet_digits_baseline.py', None),
    ('resnet_digits_ema.py', 'EMAHook'),
    ('resnet_digits_sema.py', 'SwitchEMAHook'),
])
def test_demo_configs_build_a_runner(tmp_path, name, hook):
    demo = load_demo()
    args = demo.parse_args([
        '--config', osp.join(CONFIGS, name), '--epochs', '3', '--work-dir',
        str(tmp_path / 'work'), '--data-root', str(tmp_path / 'data')
    ])
    cfg = demo.build_config(args)
    cfg.experiment_name = f'demo_{uuid.uuid4().hex[:8]}'
    assert cfg.train_cfg.max_epochs == 3
    assert cfg.param_scheduler[0].end == 3
    assert cfg.param_scheduler[0].T_max == 3
    for split in demo.SPLITS:
        assert cfg[split].dataset.data_root == str(tmp_path / 'data')
    runner = Runner.from_cfg(cfg)
    assert type(runner.model).__name__ == 'ImageClassifier'
    names = [type(h).__name__ for h in runner.hooks]
    if hook is None:
        assert not any('EMA' in n for n in names)
    else:
        assert hook in names


def test_demo_short_run(tmp_path):
    """tools/demo.py --config (a single run) trains 2 epochs on 200 images
    and prints the summary."""
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run(
        [
            sys.executable, DEMO, '--config',
            osp.join(CONFIGS, 'resnet_digits_sema.py'), '--epochs', '2',
            '--train-size', '200',
            '--data-root',
            str(tmp_path / 'data'), '--work-dir',
            str(tmp_path / 'work')
        ],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert 'SwitchEMAHook: switch 1 at the end of epoch 1' in out
    assert 'SwitchEMAHook: switch 2 at the end of epoch 2' in out
    # The pull-back is reported, without a warning (7 updates, m = 0.1).
    assert '7 EMA updates per switch with momentum 0.1' in out
    assert 'WARNING - SwitchEMAHook' not in out
    summary = out[out.index(
        'resnet_digits_sema (Switch EMA, momentum 0.1): 2 epochs in'):]
    assert '200 training images' in summary
    rows = [line.split() for line in summary.splitlines()
            if line.split()[:1] in (['1'], ['2'])]
    assert [r[0] for r in rows] == ['1', '2']
    for epoch, row in zip((1, 2), rows):
        assert row[3:5] == ['switch', str(epoch)]
        assert 0 <= float(row[5]) <= 100  # val top-1 in percent
    assert 'switches: 2' in summary
    assert 'val top-1 (of the EMA): ' in summary
    assert osp.isfile(str(tmp_path / 'work' / 'epoch_2.pth'))
    assert f'checkpoint: {tmp_path / "work" / "epoch_2.pth"}' in summary
