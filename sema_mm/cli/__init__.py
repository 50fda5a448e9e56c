"""What sema_mm's ``tools/`` share: the codebase of a config and how its
command line is merged (:mod:`.codebase`), the launcher arguments
(:mod:`.args`), building the Runner for a launcher, on GPUs or CPU only
(:mod:`.launch`), the checkpoint ``--resume auto`` picks
(:mod:`.resume`) and ending with torchrun (:mod:`.parent_death`)."""
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
