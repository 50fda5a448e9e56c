"""Install sema_mm: ``pip install -e .`` (see README for the full stack).

As OpenMMLab packages do, the configs, the tools and ``model-index.yml`` go
into the package under ``sema_mm/.mim`` (copied for a wheel or an sdist,
symlinked for an editable install), where ``mim train sema_mm CONFIG``,
``mim test`` and ``mim search`` find them after ``pip install``.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements(name: str) -> list:
    """Read one file of ``requirements/`` into a list of specifiers."""
    with open(osp.join(HERE, 'requirements', name)) as f:
        return [line.strip() for line in f
                if line.strip() and not line.startswith(('#', '-'))]


def read_version() -> str:
    """Read ``__version__`` from ``sema_mm/version.py`` without importing."""
    scope: dict = {}
    with open(osp.join(HERE, 'sema_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


#: What goes into ``sema_mm/.mim``.
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def add_mim_extension() -> None:
    """Copy (wheel, sdist) or symlink (editable install) :data:`MIM_FILES`
    into ``sema_mm/.mim``; nothing for other commands."""
    if {'develop', 'editable_wheel'} & set(sys.argv):
        mode = 'symlink'
    elif {'sdist', 'bdist_wheel', 'build'} & set(sys.argv):
        mode = 'copy'
    else:
        return
    mim_root = osp.join(HERE, 'sema_mm', '.mim')
    os.makedirs(mim_root, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(HERE, name)
        if not osp.exists(src):
            continue  # building from an sdist: .mim came with it
        dst = osp.join(mim_root, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_root), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
                '__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


add_mim_extension()

setup(
    name='sema_mm',
    version=read_version(),
    description='Switch EMA (SEMA) for OpenMMLab 2.x codebases',
    long_description=open(osp.join(HERE, 'README.md')).read()
    if osp.exists(osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['sema_mm', 'sema_mm.*']),
    python_requires='>=3.8',
    install_requires=read_requirements('runtime.txt'),
    extras_require=dict(
        mm=read_requirements('mminstall.txt'),
        tests=read_requirements('tests.txt'),
        optional=read_requirements('optional.txt'),
        tensorboard=['tensorboard'],
    ),
    include_package_data=True,
    entry_points=dict(console_scripts=[
        'sema-make-coco=sema_mm.datasets.synthetic_coco:main',
        'sema-make-digits=sema_mm.datasets.digits:main',
    ]),
    license='Apache License 2.0',
    zip_safe=False,
)
