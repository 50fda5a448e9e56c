"""Helpers of sema_mm's ``tools/train.py`` and ``tools/test.py`` (and, in
:mod:`.records`, of the comparison runner and the datasets)."""
from .codebase import (
    CODEBASES,
    Codebase,
    get_codebase,
    merge_test_args,
    merge_train_args,
)
from .launch import (
    build_runner,
    cpu_model_wrapper_cfg,
    finish_distributed,
    setup_distributed,
)

__all__ = [
    'CODEBASES', 'Codebase', 'get_codebase', 'merge_train_args',
    'merge_test_args', 'build_runner', 'cpu_model_wrapper_cfg',
    'setup_distributed', 'finish_distributed'
]
