"""Exact resume and clean preemption for mmengine's training loops.

``seeding`` (seeds derived from positions), ``batches`` (numbered batches
that can start mid-epoch), ``dataset`` (samples seeded from their
position), ``preemption`` (signals, the ranks' agreement, Slurm requeue,
the exit status), ``loops`` (the registered
``ResumableEpochBasedTrainLoop`` and ``ResumableIterBasedTrainLoop``) and
``train_cfg`` (how the tools give every config these loops).
"""
from .loops import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop
from .preemption import PREEMPTED_EXIT_CODE, Preempted
from .train_cfg import use_resumable_loop

__all__ = [
    'ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop',
    'PREEMPTED_EXIT_CODE', 'Preempted', 'use_resumable_loop'
]
