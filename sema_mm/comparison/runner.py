"""Train the variants of one or more configs over seeds and compare them.

The work dir of every run is ``<work_root>/<config name>/<variant>/seed<s>``
(``variant`` as :attr:`~sema_mm.comparison.variants.Variant.dirname`). In it:

* ``compare_cfg/<config name>.py``: the config the run trains (the given
  config with the command-line overrides, the variant and the seed
  applied), written first (mmengine then dumps its merged copy as
  ``<config name>.py``);
* the usual mmengine output (``<timestamp>/vis_data/scalars.json``,
  checkpoints, ``last_checkpoint``);
* ``started.json`` (the digest of that config, the config file, variant and
  seed) when training starts, and ``finished.json`` (the same and the
  training time) when it has returned;
* for runs started as jobs: ``job.json`` (the launcher, the slurm job id or
  pid, the log), ``attempt.json`` (written by the job) and the log,
  ``train.log`` or ``slurm-<job id>.log`` (see :mod:`.launchers`);
* ``run.lock``: held by whatever trains the run;
* ``sharpness.json``: the sharpness of its final checkpoint, once measured
  (``compare(..., sharpness=...)``, see :mod:`sema_mm.studies.sharpness`).

A run whose ``finished.json`` matches the digest of the config it would
train is skipped. An unfinished run of the same config is resumed from its
last checkpoint (``--resume auto``), or started again when it has none. A
run that finished, or started, with another config is trained again from
scratch (its folder is emptied first). A run that a job (of an earlier
comparison) is still training is followed, not started again.

How runs are started (:mod:`.launchers`): one after another in this process
(built as ``tools/train.py`` builds them: the codebase's dataloader defaults
and set-up, :func:`sema_mm.cli.build_runner`), the default; one after
another as processes (``subprocess``, or ``gpus > 1``:
``tools/dist_train.sh``); several at once on this machine
(``launcher='local'``); or as slurm jobs (``launcher='slurm'``). Either way
one status line per run shows its progress (:mod:`.progress`), and one
comparison at a time may train under a root (:func:`.jobs.root_lock`).
"""
import argparse
import contextlib
import glob
import hashlib
import io
import logging
import math
import os
import os.path as osp
import shutil
import sys
import uuid
import warnings
from dataclasses import dataclass, field
from typing import IO, Callable, Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config
from mmengine.logging import MMLogger, print_log

from ..records import read_json, write_json, write_text
from ..studies.sharpness import (
    SharpnessOptions,
    final_checkpoint,
    markdown_sharpness,
    measure_checkpoint,
)
from .job_wrapper import FINISHED, STARTED
from .jobs import Outcome, Scheduler, root_lock
from .launchers import InProcessLauncher, LocalLauncher, SlurmLauncher, Task
from .paired_stats import (
    PairedDifference,
    markdown_paired,
    paired_comparisons,
    paired_difference,
    plot_paired,
)
from .progress import BoardHook, ProgressBoard
from .results import (
    VariantSummary,
    loss_curve,
    markdown_table,
    metric_curve,
    metric_rule,
    pick_metric,
    plot_curves,
    read_run,
    summarise_variant,
    summary_digits,
    switch_table,
)
from .variants import Variant, apply_variant, is_epoch_based, set_epochs

CONFIG_DIR = 'compare_cfg'
LOGGER = 'sema_compare'
LAUNCHERS = ('none', 'local', 'slurm')

__all__ = [
    'FINISHED', 'STARTED', 'Run', 'Settings', 'RunsFailed', 'compare',
    'collect', 'write_report', 'plan_runs', 'run_state', 'make_task',
    'survey'
]


def logger_name() -> str:
    """The name of the logger progress messages go to (created once)."""
    if not MMLogger.check_instance_created(LOGGER):
        MMLogger.get_instance(LOGGER, logger_name=LOGGER, log_level='INFO')
    return LOGGER


def log(message: str, level: int = logging.INFO) -> None:
    """Log a progress message of the comparison."""
    print_log(message, logger=logger_name(), level=level)


@dataclass
class Run:
    """One training run of a comparison.

    Attributes:
        config_name (str): Name of the config (table and folder name).
        config_path (str): The config file it derives from.
        variant (Variant): What is trained.
        seed (int): Training seed.
        work_dir (str): The run's work dir.
    """

    config_name: str
    config_path: str
    variant: Variant
    seed: int
    work_dir: str

    @property
    def name(self) -> str:
        return f'{self.config_name} {self.variant.label} seed {self.seed}'


@dataclass
class Settings:
    """What every run of a comparison shares.

    Attributes:
        momentum (float, optional): EMA/SEMA momentum unless a variant sets
            its own (see :func:`~sema_mm.comparison.variants.apply_variant`).
        epochs (int, optional): Train this many epochs (schedules that end
            with training are stretched).
        cfg_options (dict, optional): Overrides merged into each config.
        modify (callable, optional): Called with each loaded config (after
            ``cfg_options``) to edit it further in place.
        gpus (int): Processes (GPUs) per run; > 1 starts
            ``tools/dist_train.sh`` (``tools/slurm_train.sh`` with that many
            tasks on slurm).
        subprocess (bool): Run ``tools/train.py`` in a subprocess even for
            one process.
        threads (int, optional): torch CPU threads of each run.
        quiet (bool): In-process runs log only warnings to the console
            (everything still goes to their log file).
        launcher (str): ``'none'`` (one run after another), ``'local'``
            (several at once on this machine) or ``'slurm'`` (a job per
            run).
        parallel (int, optional): ``'local'``: runs at once at most (on a
            machine without GPUs: the number of CPU runs at once, default
            1).
        partition (str, optional): ``'slurm'``: the partition.
        max_jobs (int, optional): ``'slurm'``: jobs running at once at most.
        gpus_per_node (int): ``'slurm'``: GPUs per node. Defaults to 8.
        cpus_per_task (int, optional): ``'slurm'``: ``--cpus-per-task``.
        sbatch_args (Sequence[str]): ``'slurm'``: more ``sbatch`` options.
        wait (bool): Wait for the jobs to end (False, slurm only: submit
            and return).
        poll_s (float, optional): Seconds between two looks at running
            jobs (default: 10 on slurm, 1 otherwise).
        progress (str): ``'auto'``, ``'tty'`` or ``'plain'``: how the status
            lines are shown (see :class:`~.progress.ProgressBoard`).
        stream (IO, optional): Where the status lines go (``sys.stdout``).
        heartbeat_s (float, optional): Plain progress: seconds of silence
            after which the running runs' lines are printed again (None:
            never). Defaults to 600.
    """

    momentum: Optional[float] = None
    epochs: Optional[int] = None
    cfg_options: Optional[dict] = None
    modify: Optional[Callable[[Config], None]] = None
    gpus: int = 1
    subprocess: bool = False
    threads: Optional[int] = None
    quiet: bool = True
    launcher: str = 'none'
    parallel: Optional[int] = None
    partition: Optional[str] = None
    max_jobs: Optional[int] = None
    gpus_per_node: int = 8
    cpus_per_task: Optional[int] = None
    sbatch_args: Sequence[str] = ()
    wait: bool = True
    poll_s: Optional[float] = None
    progress: str = 'auto'
    stream: Optional[IO] = None
    heartbeat_s: Optional[float] = 600.0


def build_run_config(run: Run, settings: Settings) -> Config:
    """The config ``run`` trains (not yet written).

    Args:
        run (Run): The run.
        settings (Settings): Shared settings.

    Returns:
        Config: The given config with ``cfg_options``, ``modify``,
        ``epochs``, the variant and the seed applied; ``work_dir`` is the
        run's.
    """
    cfg = Config.fromfile(run.config_path)
    if settings.cfg_options:
        cfg.merge_from_dict(settings.cfg_options)
    if settings.modify is not None:
        settings.modify(cfg)
    if settings.epochs is not None:
        if not is_epoch_based(cfg):
            raise ValueError(f'{run.config_path} is iteration-based; set '
                             'train_cfg.max_iters with cfg_options instead '
                             'of epochs')
        set_epochs(cfg, settings.epochs)
    apply_variant(cfg, run.variant, settings.momentum)
    randomness = dict(cfg.get('randomness') or {})
    randomness['seed'] = run.seed
    cfg.randomness = randomness
    cfg.work_dir = run.work_dir
    return cfg


def config_digest(text: str) -> str:
    """SHA-1 of a config's text."""
    return hashlib.sha1(text.encode()).hexdigest()


def config_file(run: Run) -> str:
    """Where the config of ``run`` is written:
    ``<work_dir>/compare_cfg/<config name>.py`` (mmengine dumps its merged
    copy as ``<work_dir>/<config name>.py``)."""
    return osp.join(run.work_dir, CONFIG_DIR, f'{run.config_name}.py')


def read_finished(work_dir: str, name: str = FINISHED) -> Optional[dict]:
    """The ``finished.json`` (or ``name``) record of a run, or None."""
    return read_json(osp.join(work_dir, name))


def run_state(work_dir: str, digest: str) -> str:
    """``'finished'`` (same config), ``'stale'`` (finished, or started,
    with another config), ``'partial'`` (started with this config, not
    finished) or ``'new'``."""
    record = read_finished(work_dir)
    if record is not None:
        return 'finished' if record.get('digest') == digest else 'stale'
    if not (osp.isdir(work_dir) and os.listdir(work_dir)):
        return 'new'
    started = read_finished(work_dir, STARTED)
    if started is not None and started.get('digest') != digest:
        return 'stale'
    return 'partial'


#: mmengine's own deprecation notices, said by every run's CheckpointHook.
KNOWN_NOISE = ('"FileClient" will be deprecated',
               '"HardDiskBackend" is the alias of "LocalBackend"')


def _drop_known_noise(record: logging.LogRecord) -> bool:
    """Console filter: drop :data:`KNOWN_NOISE` (the log file keeps it)."""
    message = record.getMessage()
    return not any(text in message for text in KNOWN_NOISE)


def _build_quietly(cfg: Config, stream: Optional[IO] = None):
    """Build the runner with its console output held back, then let its
    console handlers show warnings only, on ``stream`` (``sys.stdout``;
    its log file keeps everything). The warnings and errors logged while
    building are shown."""
    from sema_mm.cli import build_runner

    stream = stream or sys.stdout
    held = io.StringIO()
    with contextlib.redirect_stdout(held):
        runner = build_runner(cfg)
    for handler in runner.logger.handlers:
        if type(handler) is logging.StreamHandler and \
                handler.stream is held:
            handler.setStream(stream)
            handler.setLevel(logging.WARNING)
            handler.addFilter(_drop_known_noise)
    for line in held.getvalue().splitlines():
        if ' - WARNING - ' in line or ' - ERROR - ' in line:
            stream.write(line + '\n')
    return runner


def train_in_process(path: str, run: Run, settings: Settings,
                     hooks: Sequence = (),
                     stream: Optional[IO] = None) -> None:
    """Train ``path`` here, as ``tools/train.py`` would.

    Args:
        path (str): The run's config file.
        run (Run): The run.
        settings (Settings): Shared settings.
        hooks (Sequence): Hook objects registered on the runner (quiet
            runs only), e.g. a :class:`~.progress.BoardHook`.
        stream (IO, optional): Where the console output of a quiet run
            goes.
    """
    import torch

    import sema_mm  # noqa: F401
    from sema_mm.cli import build_runner, merge_train_args

    cfg = Config.fromfile(path)
    args = argparse.Namespace(
        config=path, work_dir=run.work_dir, amp=False,
        auto_scale_lr=False,
        resume='auto' if has_checkpoint(run.work_dir) else None,
        cfg_options=None, launcher='none')
    codebase = merge_train_args(cfg, args)
    codebase.require_installed(path)
    if codebase.setup is not None:
        codebase.setup()
    # A unique name: several runners in one process must not share the
    # logger, message hub or visualizer instances mmengine keys by it.
    cfg.experiment_name = f'{run.variant.dirname}_seed{run.seed}_' \
        f'{uuid.uuid4().hex[:8]}'
    threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        with warnings.catch_warnings():
            if settings.quiet:
                # Said at every pass over a dataloader by mmpretrain's
                # loaders on a machine without an accelerator.
                warnings.filterwarnings(
                    'ignore',
                    message=".*'pin_memory' argument is set as true")
                runner = _build_quietly(cfg, stream)
                for hook in hooks:
                    runner.register_hook(hook)
            else:
                runner = build_runner(cfg)
            runner.train()
    finally:
        torch.set_num_threads(threads)


def has_checkpoint(work_dir: str) -> bool:
    """Whether ``work_dir`` holds a checkpoint to resume from."""
    return osp.isfile(osp.join(work_dir, 'last_checkpoint')) or bool(
        glob.glob(osp.join(work_dir, '*.pth')))


def make_task(run: Run, settings: Settings, force: bool = False) -> Task:
    """The :class:`~.launchers.Task` of ``run``: its config built (not yet
    written), and what to do right before it starts (``prepare``): empty
    its folder if it holds another config's run (or with ``force``), write
    the config and ``started.json``.

    Args:
        run (Run): The run.
        settings (Settings): Shared settings.
        force (bool): Train it again from scratch even if it finished.

    Returns:
        Task: The task (``payload`` is ``run``).
    """
    cfg = build_run_config(run, settings)
    text = cfg.pretty_text
    digest = config_digest(text)
    by_epoch = is_epoch_based(cfg)
    total = (cfg.get('train_cfg') or {}).get(
        'max_epochs' if by_epoch else 'max_iters')
    path = config_file(run)

    def prepare() -> Optional[str]:
        state = run_state(run.work_dir, digest)
        message = None
        if state == 'stale' or (force and state != 'new'):
            message = ('its folder holds a run of another config'
                       if state == 'stale' else '--force') + \
                ': training again from scratch'
            shutil.rmtree(run.work_dir)
        elif state == 'partial' and has_checkpoint(run.work_dir):
            message = 'unfinished: resuming from its last checkpoint'
        os.makedirs(osp.dirname(path), exist_ok=True)
        write_text(path, text)
        write_json(osp.join(run.work_dir, STARTED), dict(
            digest=digest, config=run.config_path,
            variant=run.variant.spec or run.variant.kind, seed=run.seed))
        return message

    return Task(
        key=osp.join(run.config_name, run.variant.dirname, f'seed{run.seed}'),
        name=run.name, work_dir=run.work_dir, config=path, digest=digest,
        unit='epoch' if by_epoch else 'iter',
        total=int(total) if total else None, prepare=prepare, payload=run)


def make_launcher(settings: Settings, work_root: str,
                  train: Callable[[Task], None]):
    """The launcher ``settings`` ask for (see :mod:`.launchers`)."""
    if settings.launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got '
                         f'{settings.launcher!r}')
    if settings.launcher == 'slurm':
        if not settings.partition:
            raise ValueError('the slurm launcher needs a partition')
        return SlurmLauncher(
            settings.partition, gpus_per_run=settings.gpus,
            gpus_per_node=settings.gpus_per_node,
            cpus_per_task=settings.cpus_per_task,
            max_jobs=settings.max_jobs, threads=settings.threads,
            sbatch_args=settings.sbatch_args, root=work_root)
    if not settings.wait:
        raise ValueError('not waiting for the runs needs the slurm '
                         'launcher')
    if settings.launcher == 'local':
        return LocalLauncher(settings.gpus, settings.parallel,
                             settings.threads)
    if settings.subprocess or settings.gpus > 1:
        return LocalLauncher(settings.gpus, threads=settings.threads,
                             pin_devices=False)
    return InProcessLauncher(train)


def make_board(tasks: Sequence[Task], settings: Settings,
               metric: Optional[str] = None) -> ProgressBoard:
    """The status lines of ``tasks``."""
    mode = settings.progress if settings.quiet else 'plain'
    return ProgressBoard({t.key: t.name for t in tasks},
                         stream=settings.stream, mode=mode, metric=metric,
                         heartbeat_s=settings.heartbeat_s)


class RunsFailed(RuntimeError):
    """Some runs of a comparison failed; the report was written with the
    others.

    Attributes:
        failed (list): ``(name, detail)`` of each failed run.
        results (list): The :class:`ConfigResult` of each config (empty if
            nothing was logged).
    """

    def __init__(self, failed: List[Tuple[str, str]],
                 results: List['ConfigResult']) -> None:
        lines = '\n'.join(f'  {name}: {detail}' for name, detail in failed)
        nothing = '' if results else (
            'No run logged a validation metric, so there is no table. ')
        super().__init__(
            f'{len(failed)} run(s) failed:\n{lines}\n{nothing}Run the same '
            'command again to start them again (each resumes from its last '
            'checkpoint).')
        self.failed = failed
        self.results = results


def train_runs(runs: Sequence[Run], settings: Settings, work_root: str,
               force: bool = False, metric: Optional[str] = None) -> Outcome:
    """Start every run that is not finished with ``settings``' launcher
    and follow them (see :class:`~.jobs.Scheduler`).

    Returns:
        Outcome: How the runs ended up.
    """
    tasks = [make_task(run, settings, force) for run in runs]
    board = make_board(tasks, settings, metric)

    def train(task: Task) -> None:
        train_in_process(task.config, task.payload, settings,
                         hooks=[BoardHook(board, task.key)],
                         stream=board.writer())

    launcher = make_launcher(settings, work_root, train)
    poll_s = settings.poll_s or (10.0 if launcher.name == 'slurm' else 1.0)
    how = launcher.describe() if hasattr(launcher, 'describe') else \
        'one run at a time in this process'
    log(f'{len(runs)} runs under {work_root}: {how}')
    scheduler = Scheduler(launcher, board, wait=settings.wait, poll_s=poll_s,
                          force=force)
    return scheduler.run(tasks)


def survey(runs: Sequence[Run], settings: Settings) -> None:
    """Print the state of every run (finished, queued, running, failed or
    not started), a line each, starting none."""
    tasks = [make_task(run, settings) for run in runs]
    board = ProgressBoard({t.key: t.name for t in tasks},
                          stream=settings.stream, mode='plain')
    Scheduler(None, board).survey(tasks)


def plan_runs(configs: Dict[str, str], variants: Sequence[Variant],
              seeds: Sequence[int], work_root: str) -> List[Run]:
    """All runs, config by config, seed by seed, variant by variant."""
    return [
        Run(name, path, v, s,
            osp.join(work_root, name, v.dirname, f'seed{s}'))
        for name, path in configs.items() for s in seeds for v in variants
    ]


@dataclass
class ConfigResult:
    """The comparison of the variants of one config.

    Attributes:
        name (str): Config name.
        metric (str): The compared metric.
        rule (str): ``'greater'`` or ``'less'``.
        step_name (str): ``'epoch'`` or ``'iteration'``.
        summaries (list): One :class:`VariantSummary` per variant.
        table (str): The Markdown table.
        plot (str, optional): The PNG written.
        switches (str): The Markdown table of each run's SEMA switches
            (``''`` when no run switched).
        paired (list): Each variant against the baseline and EMA, seed by
            seed (:class:`~.paired_stats.PairedDifference` of the final
            values).
        paired_plot (str, optional): The PNG of the per-seed differences.
        sharpness (dict): Variant label -> (seed -> the sharpness of the
            run's final checkpoint); empty unless measured.
    """

    name: str
    metric: str
    rule: str
    step_name: str
    summaries: List[VariantSummary]
    table: str
    plot: Optional[str] = None
    switches: str = ''
    paired: List[PairedDifference] = field(default_factory=list)
    paired_plot: Optional[str] = None
    sharpness: Dict[str, Dict[int, dict]] = field(default_factory=dict)


def collect(runs: Sequence[Run], metric: Optional[str] = None,
            rule: Optional[str] = None, plot_dir: Optional[str] = None,
            bootstrap: int = 0) -> List[ConfigResult]:
    """Read the logs of ``runs`` and compare the variants of each config.

    Args:
        runs (Sequence[Run]): The runs (see :func:`plan_runs`).
        metric (str, optional): Validation metric; found automatically
            otherwise (see :func:`~sema_mm.comparison.results.pick_metric`).
        rule (str, optional): ``'greater'`` or ``'less'``; from the
            metric's name otherwise.
        plot_dir (str, optional): Write ``<config>_<metric>.png`` (and
            ``<config>_<metric>_paired.png``) here.
        bootstrap (int): 0: Student's t intervals of the paired
            differences; else bootstrap intervals with this many resamples.

    Returns:
        list: One :class:`ConfigResult` per config, in order.
    """
    results = []
    names = list(dict.fromkeys(r.config_name for r in runs))
    for name in names:
        mine = [r for r in runs if r.config_name == name]
        logs = {id(r): read_run(r.work_dir) for r in mine}
        chosen = pick_metric(list(logs.values()), metric)
        how = rule or metric_rule(chosen)
        epoch_based = True
        path = config_file(mine[0])
        if osp.isfile(path):
            epoch_based = is_epoch_based(Config.fromfile(path))
        step_name = 'epoch' if epoch_based else 'iteration'
        summaries = []
        variants = list(dict.fromkeys(r.variant.dirname for r in mine))
        for dirname in variants:
            vruns = [r for r in mine if r.variant.dirname == dirname]
            walls = [(read_finished(r.work_dir) or {}).get('wall_s')
                     for r in vruns]
            summaries.append(
                summarise_variant(
                    vruns[0].variant.label,
                    {r.seed: metric_curve(logs[id(r)], chosen)
                     for r in vruns},
                    {r.seed: loss_curve(logs[id(r)]) for r in vruns},
                    how,
                    [w for w in walls if w is not None],
                    {r.seed: logs[id(r)].switch_distance() for r in vruns}))
        table = markdown_table(summaries, chosen, how, step_name)
        paired = paired_comparisons(
            {s.label: dict(zip(s.seeds, s.final_values)) for s in summaries},
            how, bootstrap)
        plot = paired_plot = None
        if plot_dir is not None:
            os.makedirs(plot_dir, exist_ok=True)
            safe = chosen.replace('/', '_')
            plot = plot_curves(
                summaries, chosen, osp.join(plot_dir, f'{name}_{safe}.png'),
                title=name, step_name=step_name)
            if paired:
                paired_plot = plot_paired(
                    paired, osp.join(plot_dir, f'{name}_{safe}_paired.png'),
                    chosen, title=name)
        switches = switch_table([(r.variant.label, r.seed, logs[id(r)])
                                 for r in mine])
        results.append(
            ConfigResult(name, chosen, how, step_name, summaries, table,
                         plot, switches, paired, paired_plot))
    return results


SHARPNESS_FILE = 'sharpness.json'


def run_sharpness(run: Run, options: SharpnessOptions) -> Optional[dict]:
    """The sharpness of the final checkpoint of a finished run (see
    :mod:`sema_mm.studies.sharpness`), measured once: kept in the run's
    ``sharpness.json`` with the options and the checkpoint it belongs to.

    Returns:
        dict or None: The measures; None when the run has not finished or
        has no checkpoint.
    """
    checkpoint = final_checkpoint(run.work_dir)
    if read_finished(run.work_dir) is None or checkpoint is None:
        return None
    key = dict(options.key(), checkpoint=osp.basename(checkpoint),
               mtime_ns=os.stat(checkpoint).st_mtime_ns)
    path = osp.join(run.work_dir, SHARPNESS_FILE)
    cached = read_json(path)
    if cached is not None and cached.get('key') == key:
        return cached['result']
    result = measure_checkpoint(config_file(run), checkpoint, options)
    result['checkpoint'] = osp.relpath(checkpoint, run.work_dir)
    write_json(path, dict(key=key, result=result))
    log(f'sharpness of {run.name}: ' + ', '.join(
        f'{k} {result[k]:.4g}' for k in ('loss', 'lambda_max',
                                         'eps_sharpness', 'trace')
        if result[k] is not None) + f' ({result["seconds"]:.0f} s)')
    return result


def add_sharpness(results: Sequence[ConfigResult], runs: Sequence[Run],
                  options: SharpnessOptions,
                  threads: Optional[int] = None) -> None:
    """Measure (or read) the sharpness of every finished run, with
    ``threads`` torch CPU threads if given, and put it into the
    :class:`ConfigResult` of its config."""
    import torch

    by_name = {res.name: res for res in results}
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        for run in runs:
            res = by_name.get(run.config_name)
            result = run_sharpness(run, options) if res is not None else None
            if result is not None:
                res.sharpness.setdefault(run.variant.label,
                                         {})[run.seed] = result
    finally:
        torch.set_num_threads(before)


def sharpness_section(res: ConfigResult) -> str:
    """The Markdown of the measured sharpness of one config: the table
    of the variants, and the paired differences of ``lambda_max`` and
    epsilon-sharpness against the baseline and EMA."""
    first = next(iter(next(iter(res.sharpness.values())).values()))
    parts = [
        'Sharpness of the final weights (mean ± std over seeds; the '
        f'training loss over {first["batches"]} fixed training batches, '
        f'{first["images"]} images, test pipeline, eval mode; ε = '
        f'{first["eps"]} x ||w||; see tools/analysis/sharpness.py):\n',
        markdown_sharpness(res.sharpness) + '\n'
    ]
    for key, name in (('lambda_max', 'λ_max'),
                      ('eps_sharpness', 'ε-sharpness')):
        values = {
            label: {s: r[key] for s, r in runs.items()
                    if r.get(key) is not None}
            for label, runs in res.sharpness.items()
        }
        diffs = [
            paired_difference(values[label], values[ref], label, ref)
            for ref in ('baseline', 'EMA') if values.get(ref)
            for label in values
            if label != ref and not (ref == 'EMA' and label == 'baseline')
        ]
        if diffs:
            parts.append(f'Paired differences of {name}, variant - '
                         'reference (negative: flatter):\n')
            parts.append(markdown_paired(diffs, digits=4) + '\n')
    return '\n'.join(parts)


def write_report(results: Sequence[ConfigResult], work_root: str,
                 header: str = '') -> str:
    """Write ``results.md`` and ``results.json`` into ``work_root``.

    Returns:
        str: The Markdown text written.
    """
    parts = [header] if header else []
    for res in results:
        parts.append(f'### {res.name}: val {res.metric}\n')
        parts.append(res.table + '\n')
        if res.paired:
            parts.append(
                f'Paired differences of the final {res.metric} (same seed, '
                'positive: better):\n')
            parts.append(markdown_paired(
                res.paired, digits=summary_digits(res.summaries)) + '\n')
        if res.sharpness:
            parts.append(sharpness_section(res))
        if res.switches:
            parts.append('SEMA switches per run:\n\n' + res.switches + '\n')
        if res.plot:
            parts.append(f'![{res.name}]({osp.relpath(res.plot, work_root)})'
                         '\n')
        if res.paired_plot:
            parts.append(f'![{res.name}: paired differences]'
                         f'({osp.relpath(res.paired_plot, work_root)})\n')
    text = '\n'.join(parts)
    os.makedirs(work_root, exist_ok=True)
    write_text(osp.join(work_root, 'results.md'), text)

    def clean(pair):
        return [None if math.isnan(v) else v for v in pair]

    data = [
        dict(config=r.name, metric=r.metric, rule=r.rule, variants=[
            dict(label=s.label, seeds=s.seeds, final=clean(s.final),
                 best=clean(s.best), best_step=s.best_step,
                 final_values=s.final_values, wall_s=clean(s.wall_s),
                 curve={str(k): v[0] for k, v in s.curve.items()})
            for s in r.summaries
        ], paired=[d.to_dict() for d in r.paired],
             sharpness={label: {str(s): m for s, m in runs.items()}
                        for label, runs in r.sharpness.items()})
        for r in results
    ]
    write_json(osp.join(work_root, 'results.json'), data)
    return text


def compare(configs: Dict[str, str], variants: Sequence[Variant],
            seeds: Sequence[int], work_root: str,
            settings: Optional[Settings] = None,
            metric: Optional[str] = None, rule: Optional[str] = None,
            force: bool = False, train: bool = True, header: str = '',
            command: str = '', bootstrap: int = 0,
            sharpness: Optional[SharpnessOptions] = None
            ) -> List[ConfigResult]:
    """Train (or skip) every run, then compare.

    Args:
        configs (dict): Config name -> config file.
        variants (Sequence[Variant]): What to compare.
        seeds (Sequence[int]): Training seeds.
        work_root (str): Root of the work dirs, ``results.md``,
            ``results.json`` and the plots.
        settings (Settings, optional): Shared settings.
        metric (str, optional): Validation metric to compare.
        rule (str, optional): ``'greater'`` or ``'less'``.
        force (bool): Train finished runs again.
        train (bool): False: only show the runs' states, read what is there
            and report.
        header (str): Text put before the tables in ``results.md``.
        command (str): The command line, shown to a second comparison on
            the same root.
        bootstrap (int): 0: Student's t intervals of the paired
            differences; else bootstrap intervals with this many resamples.
        sharpness (SharpnessOptions, optional): Measure the sharpness of
            every finished run's final checkpoint (see
            :mod:`sema_mm.studies.sharpness`;
            kept in the run's ``sharpness.json``) and add it to the report.

    Returns:
        list: One :class:`ConfigResult` per config; empty when the runs
        were only submitted (``settings.wait`` False) and some are still
        queued or running.

    Raises:
        CompareBusyError: When another comparison trains under
            ``work_root``.
        RunsFailed: When runs failed (after the report of the others was
            written).
    """
    settings = settings or Settings()
    runs = plan_runs(configs, variants, seeds, work_root)
    failed: List[Tuple[str, str]] = []
    if train:
        os.makedirs(work_root, exist_ok=True)
        with root_lock(work_root, command or ' '.join(sys.argv)):
            outcome = train_runs(runs, settings, work_root, force, metric)
        failed = [(task.name, detail) for task, detail in outcome.failed]
        if outcome.active:
            log(f'{len(outcome.active)} run(s) submitted or still running; '
                'tables come when they are done: run the same command again '
                'to wait for them, or add --report-only to see where they '
                'are')
            if not failed:
                return []
            raise RunsFailed(failed, [])
    else:
        survey(runs, settings)
    unfinished = [r.name for r in runs if read_finished(r.work_dir) is None]
    if unfinished:
        header += ('\nNot finished (their curves so far are included): ' +
                   ', '.join(unfinished) + '\n')
    try:
        results = collect(runs, metric, rule, plot_dir=work_root,
                          bootstrap=bootstrap)
    except KeyError:
        if not failed:
            raise
        results = []  # no run logged a validation metric
    else:
        if sharpness is not None:
            add_sharpness(results, runs, sharpness, settings.threads)
        write_report(results, work_root, header)
    if failed:
        raise RunsFailed(failed, results)
    return results
