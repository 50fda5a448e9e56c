"""The package as OpenMMLab packages ship: a wheel built from the repository
carries the configs, the tools and ``model-index.yml`` under
``sema_mm/.mim``, and ``mim train sema_mm CONFIG`` trains from it in a fresh
virtual environment outside the checkout."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
#: What the build copies of the checkout (no .git, .venv, work dirs).
SKIP = shutil.ignore_patterns('.git', '.venv*', 'work_dirs', 'data', 'build',
                              '*.egg-info', '__pycache__', '.mim', 'dist',
                              '.pytest_cache', '.ruff_cache')


def test_model_index_lists_every_config():
    """``model-index.yml`` imports a metafile per config folder, and the
    metafiles name every config (``_base_`` files aside) once, under unique
    names."""
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    listed, names = [], []
    for meta in index['Import']:
        data = yaml.safe_load((REPO / meta).read_text())
        collections = {c['Name'] for c in data['Collections']}
        for model in data['Models']:
            assert model['In Collection'] in collections
            assert (REPO / model['Config']).is_file(), model['Config']
            listed.append(model['Config'])
            names.append(model['Name'])
    configs = sorted(
        str(p.relative_to(REPO)) for p in (REPO / 'configs').rglob('*.py')
        if '_base_' not in p.parts)
    assert sorted(listed) == configs
    assert len(set(names)) == len(names)


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the checkout."""
    root = tmp_path_factory.mktemp('build')
    src = root / 'src'
    shutil.copytree(REPO, src, ignore=SKIP, symlinks=True)
    subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps',
         '--no-build-isolation', '-q', str(src), '-w', str(root / 'dist')],
        check=True, timeout=600)
    return next((root / 'dist').glob('sema_mm-*.whl'))


def test_wheel_holds_configs_tools_and_licence(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ('sema_mm/.mim/model-index.yml',
                 'sema_mm/.mim/tools/train.py',
                 'sema_mm/.mim/tools/test.py',
                 'sema_mm/.mim/tools/dist_train.sh',
                 'sema_mm/.mim/tools/analysis/plot_log.py',
                 'sema_mm/.mim/configs/demo/resnet_digits_sema.py',
                 'sema_mm/.mim/configs/demo/_base_/resnet_digits.py',
                 'sema_mm/.mim/configs/demo/metafile.yml'):
        assert path in names, path
    assert any(n.endswith('.dist-info/LICENSE') or '/licenses/LICENSE' in n
               for n in names)
    meta = next(n for n in names if n.endswith('.dist-info/METADATA'))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert 'Provides-Extra: tensorboard' in text


def fresh_venv(where: Path) -> Path:
    """A virtual environment whose own site-packages come first, reusing
    the packages of the running one (torch, mmengine, mmcv, openmim) through
    a path file: a venv made from a venv's Python would otherwise see only
    the base interpreter's packages."""
    subprocess.run([sys.executable, '-m', 'venv', '--system-site-packages',
                    '--without-pip', str(where)], check=True, timeout=300)
    python = where / 'bin' / 'python'
    site = subprocess.run(
        [str(python), '-c', 'import sysconfig; '
         'print(sysconfig.get_paths()["purelib"])'],
        check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / 'running_env.pth').write_text(
        sysconfig.get_paths()['purelib'] + '\n')
    return python


def test_mim_trains_from_the_installed_wheel(wheel, digits, tmp_path):
    """``pip install --no-deps`` the wheel into a fresh venv, then, from a
    folder outside the checkout and without PYTHONPATH, train the demo
    config for one epoch with ``mim train sema_mm`` (or, where openmim is
    missing, the packaged ``tools/train.py`` that mim runs)."""
    python = fresh_venv(tmp_path / 'venv')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env.update(CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    # Without PYTHONPATH: with the checkout on it, pip would see the
    # editable install's ``sema_mm.egg-info`` there and take the wheel as
    # already installed (``--ignore-installed`` for any other such copy).
    subprocess.run(
        [sys.executable, '-m', 'pip', '--python', str(python), 'install',
         '--no-deps', '--no-index', '--ignore-installed', '-q', str(wheel)],
        check=True, timeout=300, env=env)
    cwd = tmp_path / 'elsewhere'
    cwd.mkdir()
    where = subprocess.run(
        [str(python), '-c', 'import sema_mm; print(sema_mm.__file__)'],
        cwd=cwd, env=env, check=True, capture_output=True,
        text=True).stdout.strip()
    assert where.startswith(str(tmp_path / 'venv')), where
    work_dir = cwd / 'work_dirs' / 'sema'
    options = [
        '--work-dir', str(work_dir), '--cfg-options',
        'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
        *(f'{loader}.dataset.data_root={digits}'
          for loader in ('train_dataloader', 'val_dataloader',
                         'test_dataloader'))
    ]
    has_mim = subprocess.run([str(python), '-c', 'import mim'], env=env,
                             capture_output=True).returncode == 0
    if has_mim:
        cmd = [str(python), '-m', 'mim', 'train', 'sema_mm',
               'configs/demo/resnet_digits_sema.py', *options]
    else:
        script = osp.join(osp.dirname(where), '.mim', 'tools', 'train.py')
        cmd = [str(python), script, osp.join(
            osp.dirname(where), '.mim', 'configs', 'demo',
            'resnet_digits_sema.py'), *options]
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert 'SwitchEMAHook: switch 1 at the end of epoch 1' in proc.stdout
    assert (work_dir / 'epoch_1.pth').is_file()
    if has_mim:
        assert '.mim/configs/demo/resnet_digits_sema.py' in proc.stdout
