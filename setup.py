"""Install sema_mm: ``pip install -e .`` (see README for the full stack)."""
import os.path as osp

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
    ),
    entry_points=dict(console_scripts=[
        'sema-make-coco=sema_mm.datasets.synthetic_coco:main',
        'sema-make-digits=sema_mm.datasets.digits:main',
    ]),
    license='Apache License 2.0',
    zip_safe=False,
)
