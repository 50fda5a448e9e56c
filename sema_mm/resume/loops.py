"""Training loops that resume bit-exactly and stop cleanly on preemption.

:class:`ResumableEpochBasedTrainLoop` and :class:`ResumableIterBasedTrainLoop`
are mmengine's ``EpochBasedTrainLoop`` and ``IterBasedTrainLoop`` (same
arguments, same hooks, same validation schedule) with, from the start of
:meth:`run` (after ``Runner.load_or_resume``, so the seed of a resumed
checkpoint is known):

* **Data from positions.** The sampler and batch sampler are built again
  with the run's seed (mmdet's configs set no seed, so the one built before
  the checkpoint's seed was restored would shuffle differently), and the
  training ``DataLoader`` is built again around the same dataset, wrapped
  in :class:`~.dataset.SeededDataset`, with a
  :class:`~.batches.SeededBatches` batch sampler and the loader's other
  settings: every sample's augmentation is drawn from
  ``(seed, iteration, index)``, whatever ``num_workers`` or persistent
  workers. The config's sampler stays the loader's ``sampler`` (and
  ``batch_sampler.sampler``) for mmengine's ``DistSamplerSeedHook``.
* **Model-side randomness from positions.** Before each iteration's hooks,
  python's, numpy's and torch's (CPU and CUDA) global generators are seeded
  from ``(seed, rank, iteration)`` (dropout, drop-path, RoI sampling, ...).
* **Mid-epoch resume.** A checkpoint written inside an epoch (meta
  ``epoch`` = the epoch in progress, ``iter`` = the iterations done, as
  mmengine's ``CheckpointHook`` with ``by_epoch=False`` and the preemption
  checkpoint write it) resumes at the next batch of that epoch: the batches
  already trained on are skipped at the index level, and hooks get the
  right ``batch_idx``. mmengine's epoch loop re-runs the whole epoch
  instead, and its iteration loop loads and augments every skipped batch.
* **Preemption.** SIGTERM or SIGUSR1 (``preemption.signals``) only sets a
  flag; the loop stops after the iteration in progress (with several
  processes: after the first iteration at whose start any rank had been
  signalled, the same one on every rank, see
  :class:`~.preemption.StopAgreement`), writes ``iter_<N>.pth`` into the
  work dir through ``Runner.save_checkpoint`` (every hook's
  ``before_save_checkpoint`` runs; written atomically, on rank 0; with
  several processes it also holds every rank's model buffers, e.g. the
  normalisation statistics that differ between ranks, which a resume on
  the same number of ranks gives back to each), points
  ``last_checkpoint`` at it, under Slurm requeues the job (rank 0,
  ``scontrol requeue $SLURM_JOB_ID``, ``preemption.requeue``) and raises
  :class:`~.preemption.Preempted`, which exits the process with
  :data:`~.preemption.PREEMPTED_EXIT_CODE`. Loader workers ignore these
  signals.

A resume on another number of ranks (or with another batch size)
continues, with a warning: the sampler then orders the data differently,
so it is not bit-identical to an uninterrupted run.
"""
import copy
import inspect
import logging
from typing import Dict, Iterator, Optional, Sequence, Union

from mmengine.dist import get_rank, get_world_size, is_main_process
from mmengine.fileio import get_file_backend, join_path
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import DATA_SAMPLERS, LOOPS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from torch.utils.data import BatchSampler, DataLoader

from .batches import SeededBatches
from .dataset import SeededDataset
from .preemption import (
    DEFAULT_SIGNALS,
    PREEMPTED_EXIT_CODE,
    IgnoreSignals,
    Preempted,
    PreemptionSignals,
    StopAgreement,
    requeue_slurm_job,
)
from .seeding import ITERATION_STREAM, derive_seed, seed_globals

#: ``runner.message_hub`` runtime info (saved in checkpoints): the world
#: size and batches per epoch of the run that wrote the checkpoint.
LAYOUT_KEY = 'resume_layout'
#: ``runner.message_hub`` runtime info in a preemption checkpoint: every
#: rank's model buffers (mmengine saves rank 0's model only; with
#: ``broadcast_buffers=False``, mmengine's default, normalisation statistics
#: differ between ranks until they are averaged at the next switch).
RANK_BUFFERS_KEY = 'resume_rank_buffers'
#: Sampler classes (by name, anywhere in the class's MRO) whose iterator
#: never ends: mmengine's ``InfiniteSampler``, mmdet's
#: ``MultiSourceSampler`` and ``GroupMultiSourceSampler``.
INFINITE_SAMPLERS = ('InfiniteSampler', 'MultiSourceSampler')
#: ``DataLoader`` arguments that are not copied from the loader built by
#: mmengine (the dataset and the batching are replaced).
_REPLACED_ARGS = ('self', 'dataset', 'batch_size', 'shuffle', 'sampler',
                  'batch_sampler', 'drop_last', 'worker_init_fn')


def run_seed(runner) -> int:
    """The run's seed: ``runner.seed`` (from the config, drawn at the
    start, or restored from the resumed checkpoint), without the rank that
    ``randomness.diff_rank_seed`` adds to it."""
    seed = runner.seed
    if runner._randomness_cfg.get('diff_rank_seed', False):
        seed -= get_rank()
    return int(seed)


def is_infinite(sampler) -> bool:
    """Whether ``sampler``'s iterator never ends (see
    :data:`INFINITE_SAMPLERS`)."""
    return any(cls.__name__ in INFINITE_SAMPLERS
               for cls in type(sampler).__mro__)


class ResumableTraining:
    """What both resumable loops add to mmengine's (see the module
    docstring). Mixed in before the mmengine loop class."""

    def _keep_config(self, dataloader: Union[DataLoader, Dict],
                     preemption: Optional[Dict]) -> None:
        """Remember the loader config (to build the samplers again) and
        check the ``preemption`` options."""
        self._dataloader_cfg = copy.deepcopy(dataloader) if isinstance(
            dataloader, dict) else None
        options = dict(signals=DEFAULT_SIGNALS, requeue='auto')
        unknown = set(preemption or {}) - set(options)
        if unknown:
            raise ValueError(
                f'train_cfg.preemption: unknown option(s) {sorted(unknown)}; '
                f'the options are {sorted(options)}.')
        options.update(preemption or {})
        if options['requeue'] not in ('auto', True, False):
            raise ValueError(
                "train_cfg.preemption.requeue must be 'auto', True or False, "
                f"got {options['requeue']!r}.")
        self._signals = PreemptionSignals(options['signals'])
        self._requeue = options['requeue']
        self._stopper: Optional[StopAgreement] = None
        self._iterator: Optional[Iterator] = None
        self._seed = 0
        self._resume_position = 0

    # ------------------------------------------------------------ set-up
    def _start(self) -> None:
        """Rebuild the loader for the run's seed, find the position to
        resume from, install the signal handlers."""
        runner = self.runner
        print_log(
            f'Training loop: {type(self).__name__} (exact resume, also '
            'mid-epoch; SIGTERM/SIGUSR1 save a checkpoint and stop).',
            logger='current')
        self._seed = run_seed(runner)
        self._rebuild_dataloader()
        length = len(self.dataloader)
        layout = dict(world_size=get_world_size(), batches_per_epoch=length)
        saved = runner.message_hub.get_info(LAYOUT_KEY)
        if saved is not None and dict(saved) != layout:
            print_log(
                f'Resuming a checkpoint written with {dict(saved)} with '
                f'{layout}: training continues, but the sampler orders the '
                'data differently, so it is not bit-identical to an '
                'uninterrupted run.', logger='current',
                level=logging.WARNING)
        runner.message_hub.update_info(LAYOUT_KEY, layout)
        self._resume_position = self._position(length)
        rank_buffers = runner.message_hub.runtime_info.pop(
            RANK_BUFFERS_KEY, None)
        if rank_buffers is not None and saved is not None \
                and dict(saved) == layout:
            self._load_buffers(rank_buffers[get_rank()])
        self._stopper = StopAgreement()
        if self._signals.numbers and not self._signals.install():
            print_log(
                'Preemption signals are not handled: training does not run '
                'in the main thread.', logger='current',
                level=logging.WARNING)

    def _position(self, length: int) -> int:
        """Batches of the current epoch already trained on."""
        done = self._iter - self._epoch * length
        if 0 <= done <= length:
            return done
        clamped = min(max(done, 0), length)
        print_log(
            f'Resumed at iteration {self._iter} of epoch {self._epoch + 1}, '
            f'which is not inside an epoch of {length} batches; starting at '
            f'batch {clamped} of it.', logger='current',
            level=logging.WARNING)
        return clamped

    def _model(self):
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    def _load_buffers(self, buffers: Dict) -> None:
        """Give this rank's model back the buffers it had when preempted."""
        for name, buffer in self._model().named_buffers():
            if name in buffers:
                buffer.copy_(buffers[name])

    def _batches_from_start(self) -> Iterator:
        """A new iterator of the training loader, kept until
        :meth:`_finish` ends its workers."""
        self._iterator = iter(self.dataloader)
        return self._iterator

    def _end_workers(self) -> None:
        """End the training loader's worker processes now (persistent ones,
        and those of an epoch stopped by a preemption). They ignore the
        preemption signals, so the SIGTERM with which Python's exit ends
        daemonic processes before it waits for them would not end them."""
        iterator, self._iterator = self._iterator, None
        shutdown = getattr(iterator, '_shutdown_workers', None)
        if shutdown is not None:
            shutdown()
        if getattr(self.dataloader, '_iterator', None) is iterator:
            self.dataloader._iterator = None

    def _finish(self) -> None:
        """End the loader workers, put the signal handlers back, release
        the gloo group."""
        self._end_workers()
        self._signals.restore()
        if self._stopper is not None:
            self._stopper.close()
            self._stopper = None

    def request_preemption(self, reason: str = 'request') -> None:
        """Stop as a preemption signal would (tests, user hooks)."""
        self._signals.request(reason)

    @property
    def preemption_requested(self) -> bool:
        """Whether this rank got a preemption signal (or request): the run
        stops after the current or the next iteration."""
        return self._signals.requested

    def _rebuild_dataloader(self) -> None:
        old = self.dataloader
        if old.batch_sampler is None:
            raise ValueError(
                'The resumable training loops need batches: set '
                'train_dataloader.batch_size (or a batch_sampler).')
        dataset = old.dataset
        if isinstance(dataset, SeededDataset):
            dataset = dataset.dataset
        batches = SeededBatches(self._batch_sampler(old, dataset))
        kwargs = {
            name: getattr(old, name)
            for name in inspect.signature(DataLoader.__init__).parameters
            if name not in _REPLACED_ARGS and hasattr(old, name)
        }
        init_fn = old.worker_init_fn
        if self._signals.numbers and old.num_workers > 0:
            init_fn = IgnoreSignals(self._signals.numbers.values(), init_fn)
        loader = DataLoader(
            SeededDataset(dataset, self._seed), batch_sampler=batches,
            worker_init_fn=init_fn, **kwargs)
        # The config's sampler stays ``loader.sampler``, as in the loader
        # mmengine builds (DataLoader refuses a sampler next to a batch
        # sampler, so it is set past its check; it only reports it).
        if batches.sampler is not None:
            object.__setattr__(loader, 'sampler', batches.sampler)
        self._batches = batches
        self.dataloader = loader

    def _batch_sampler(self, old: DataLoader, dataset):
        """The batch sampler of the config built again with the run's seed
        (or the loader's own when the config gave objects)."""
        cfg = self._dataloader_cfg
        if cfg is None or not isinstance(cfg.get('sampler'), dict):
            return old.batch_sampler
        sampler = DATA_SAMPLERS.build(
            copy.deepcopy(cfg['sampler']),
            default_args=dict(dataset=dataset, seed=self._seed))
        batch_sampler_cfg = cfg.get('batch_sampler')
        if batch_sampler_cfg is None:
            return BatchSampler(sampler, old.batch_size, old.drop_last)
        if isinstance(batch_sampler_cfg, dict):
            return DATA_SAMPLERS.build(
                copy.deepcopy(batch_sampler_cfg),
                default_args=dict(sampler=sampler,
                                  batch_size=cfg.get('batch_size')))
        return old.batch_sampler

    # -------------------------------------------------------- iterations
    def _begin_iteration(self) -> None:
        """Post the stop request; seed the global generators."""
        self._stopper.begin_iteration(self._signals.requested)
        seed_globals(
            derive_seed(self._seed, ITERATION_STREAM, get_rank(),
                        self._iter))

    def _end_iteration(self) -> None:
        """Stop here if the ranks agree on it."""
        if self._stopper.should_stop(self._signals.requested):
            self._preempt()

    def _preempt(self) -> None:
        """Write the preemption checkpoint, requeue, raise
        :class:`~.preemption.Preempted`."""
        runner = self.runner
        filename = f'iter_{self._iter}.pth'
        path = join_path(runner.work_dir, filename)
        if self._stopper.world_size > 1:
            buffers = self._stopper.gather({
                name: buffer.detach().cpu().clone()
                for name, buffer in self._model().named_buffers()
            })
            runner.message_hub.update_info(RANK_BUFFERS_KEY, buffers)
        runner.save_checkpoint(
            runner.work_dir, filename, by_epoch=False,
            meta=dict(epoch=self._epoch, iter=self._iter))
        if is_main_process():
            backend = get_file_backend(runner.work_dir)
            backend.put(path.encode(),
                        join_path(runner.work_dir, 'last_checkpoint'))
        self._stopper.barrier()
        # Said before the requeue: it ends the job's processes, and srun
        # may drop what they print after it.
        message = (
            f'Preempted ({self._signals.reason or "signal on another rank"})'
            f': stopped after iteration {self._iter} (epoch '
            f'{self._epoch + 1}) and saved {path}; exit status '
            f'{PREEMPTED_EXIT_CODE}.')
        print_log(message, logger='current', level=logging.WARNING)
        if not (is_main_process() and requeue_slurm_job(self._requeue)):
            print_log('Restart with --resume to continue.',
                      logger='current', level=logging.WARNING)
        raise Preempted(message)


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(ResumableTraining, EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop``, resumable exactly and mid-epoch,
    stopping cleanly on preemption (see the module docstring).

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The training loader or its config.
        *args: ``max_epochs``, ``val_begin``, ``val_interval``,
            ``dynamic_intervals`` as for ``EpochBasedTrainLoop``.
        preemption (dict, optional): ``signals`` (names; default
            ``('SIGTERM', 'SIGUSR1')``, ``()`` handles none) and
            ``requeue`` (``'auto'``: under Slurm when ``scontrol`` is
            found; True; False).
        **kwargs: As for ``EpochBasedTrainLoop``.
    """

    def __init__(self, runner, dataloader: Union[DataLoader, Dict], *args,
                 preemption: Optional[Dict] = None, **kwargs) -> None:
        self._keep_config(dataloader, preemption)
        super().__init__(runner, dataloader, *args, **kwargs)

    def run(self):
        """Train (from the resumed position), validate as mmengine does;
        stop on preemption."""
        self._start()
        try:
            return super().run()
        finally:
            self._finish()

    def run_epoch(self) -> None:
        """Train the rest of the current epoch."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        done, self._resume_position = self._resume_position, 0
        self._batches.start_at(self._iter, done)
        for idx, data_batch in enumerate(self._batches_from_start(),
                                         start=done):
            self._begin_iteration()
            self.run_iter(idx, data_batch)
            self._end_iteration()
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(ResumableTraining, IterBasedTrainLoop):
    """mmengine's ``IterBasedTrainLoop``, resumable exactly (skipping at
    the index level), stopping cleanly on preemption (see the module
    docstring). A finite sampler is passed over again and again, its epoch
    set before each pass (``set_epoch``) as mmengine does.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The training loader or its config.
        *args: ``max_iters``, ``val_begin``, ``val_interval``,
            ``dynamic_intervals`` as for ``IterBasedTrainLoop``.
        preemption (dict, optional): As for
            :class:`ResumableEpochBasedTrainLoop`.
        **kwargs: As for ``IterBasedTrainLoop``.
    """

    def __init__(self, runner, dataloader: Union[DataLoader, Dict], *args,
                 preemption: Optional[Dict] = None, **kwargs) -> None:
        self._keep_config(dataloader, preemption)
        super().__init__(runner, dataloader, *args, **kwargs)

    def _position(self, length: int) -> int:
        """Batches of the sampler's current pass already trained on (all
        of them for an infinite sampler)."""
        if is_infinite(self._batches.sampler):
            return self._iter
        return self._iter % length

    def _stream(self) -> Iterator[Sequence[dict]]:
        """The batches from the resumed position on, pass after pass."""
        done = self._resume_position
        if is_infinite(self._batches.sampler):
            self._batches.start_at(self._iter, done)
            yield from self._batches_from_start()
            raise RuntimeError(
                f'The infinite sampler {type(self._batches.sampler).__name__}'
                ' ran out of batches.')
        length = len(self.dataloader)
        epoch = (self._iter - done) // length
        while True:
            if hasattr(self._batches.sampler, 'set_epoch'):
                self._batches.sampler.set_epoch(epoch)
            self._batches.start_at(epoch * length + done, done)
            yield from self._batches_from_start()
            epoch, done = epoch + 1, 0

    def run(self):
        """Train from the resumed iteration, validate as mmengine does;
        stop on preemption."""
        # mmengine's __init__ started an iterator of the loader it built.
        self.dataloader_iterator = None
        self._start()
        try:
            self.runner.call_hook('before_train')
            self.runner.call_hook('before_train_epoch')
            batches = self._stream()
            while self._iter < self._max_iters and not self.stop_training:
                self.runner.model.train()
                data_batch = next(batches)
                self._begin_iteration()
                self.run_iter(data_batch)
                self._end_iteration()
                self._decide_current_val_interval()
                if (self.runner.val_loop is not None
                        and self._iter >= self.val_begin
                        and (self._iter % self.val_interval == 0
                             or self._iter == self._max_iters)):
                    self.runner.val_loop.run()
            self.runner.call_hook('after_train_epoch')
            self.runner.call_hook('after_train')
            return self.runner.model
        finally:
            self._finish()
