"""Train the variants of one or more configs over seeds and compare them.

The work dir of every run is ``<work_root>/<config name>/<variant>/seed<s>``
(``variant`` as :attr:`~sema_mm.analysis.variants.Variant.dirname`). In it:

* ``compare_cfg/<config name>.py``: the config the run trains (the given
  config with the command-line overrides, the variant and the seed
  applied), written first (mmengine then dumps its merged copy as
  ``<config name>.py``);
* the usual mmengine output (``<timestamp>/vis_data/scalars.json``,
  checkpoints, ``last_checkpoint``);
* ``started.json`` (the digest of that config) when training starts, and
  ``finished.json`` (the digest and the training time) when it has
  returned.

A run whose ``finished.json`` matches the digest of the config it would
train is skipped. An unfinished run of the same config is resumed from its
last checkpoint (``--resume auto``), or started again when it has none. A
run that finished, or started, with another config is trained again from
scratch (its folder is emptied first).

Runs go one after another in this process (built as ``tools/train.py``
builds them: the codebase's dataloader defaults and set-up,
:func:`sema_mm.cli.build_runner`), or each in a subprocess running
``tools/train.py``, or, with ``gpus > 1``, ``tools/dist_train.sh``.
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
import socket
import subprocess
import sys
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MMLogger, print_log

from ..records import read_json, write_json, write_text
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
    switch_table,
)
from .variants import Variant, apply_variant, is_epoch_based, set_epochs

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FINISHED = 'finished.json'
STARTED = 'started.json'
CONFIG_DIR = 'compare_cfg'
LOGGER = 'sema_compare'


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
            its own (see :func:`~sema_mm.analysis.variants.apply_variant`).
        epochs (int, optional): Train this many epochs (schedules that end
            with training are stretched).
        cfg_options (dict, optional): Overrides merged into each config.
        modify (callable, optional): Called with each loaded config (after
            ``cfg_options``) to edit it further in place.
        gpus (int): Processes per run; > 1 starts ``tools/dist_train.sh``.
        subprocess (bool): Run ``tools/train.py`` in a subprocess even for
            one process.
        threads (int, optional): torch CPU threads of each run.
        quiet (bool): In-process runs log only warnings to the console
            (everything still goes to their log file) and one line per
            validation.
    """

    momentum: Optional[float] = None
    epochs: Optional[int] = None
    cfg_options: Optional[dict] = None
    modify: Optional[Callable[[Config], None]] = None
    gpus: int = 1
    subprocess: bool = False
    threads: Optional[int] = None
    quiet: bool = True


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


def write_config(cfg: Config, path: str) -> str:
    """Dump ``cfg`` to ``path``; return the digest of the text."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    text = cfg.pretty_text
    write_text(path, text)
    return config_digest(text)


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


class ProgressHook(Hook):
    """Logs one line per validation of a run: the step, the training loss
    and the metrics, with the elapsed time."""

    priority = 'LOWEST'

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.start = time.perf_counter()

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        by_epoch = runner.train_loop is not None and hasattr(
            runner.train_loop, 'max_epochs')
        if by_epoch:
            where = f'epoch {runner.epoch}/{runner.max_epochs}'
        else:
            where = f'iter {runner.iter}/{runner.max_iters}'
        parts = []
        loss = runner.message_hub.log_scalars.get('train/loss')
        if loss is not None:
            # The epoch's mean (the last iteration's for iteration loops).
            window = len(runner.train_dataloader) if by_epoch else 1
            parts.append(f'loss {loss.mean(window):.4f}')
        for key, value in (metrics or {}).items():
            if isinstance(value, (int, float)):
                parts.append(f'{key} {value:.2f}')
        log(f'{self.prefix}{where}: {", ".join(parts)} '
            f'({time.perf_counter() - self.start:.0f} s)')


#: mmengine's own deprecation notices, said by every run's CheckpointHook.
KNOWN_NOISE = ('"FileClient" will be deprecated',
               '"HardDiskBackend" is the alias of "LocalBackend"')


def _drop_known_noise(record: logging.LogRecord) -> bool:
    """Console filter: drop :data:`KNOWN_NOISE` (the log file keeps it)."""
    message = record.getMessage()
    return not any(text in message for text in KNOWN_NOISE)


def _build_quietly(cfg: Config):
    """Build the runner with its console output held back, then let its
    console handlers show warnings only (its log file keeps everything).
    The warnings and errors logged while building are shown."""
    from sema_mm.cli import build_runner

    held = io.StringIO()
    with contextlib.redirect_stdout(held):
        runner = build_runner(cfg)
    for handler in runner.logger.handlers:
        if type(handler) is logging.StreamHandler and \
                handler.stream is held:
            handler.setStream(sys.stdout)
            handler.setLevel(logging.WARNING)
            handler.addFilter(_drop_known_noise)
    for line in held.getvalue().splitlines():
        if ' - WARNING - ' in line or ' - ERROR - ' in line:
            print(line, flush=True)
    return runner


def train_in_process(path: str, run: Run, settings: Settings,
                     prefix: str = '') -> None:
    """Train ``path`` here, as ``tools/train.py`` would."""
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
                runner = _build_quietly(cfg)
                runner.register_hook(ProgressHook(prefix),
                                     priority='LOWEST')
            else:
                runner = build_runner(cfg)
            runner.train()
    finally:
        torch.set_num_threads(threads)


def has_checkpoint(work_dir: str) -> bool:
    """Whether ``work_dir`` holds a checkpoint to resume from."""
    return osp.isfile(osp.join(work_dir, 'last_checkpoint')) or bool(
        glob.glob(osp.join(work_dir, '*.pth')))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def train_subprocess(path: str, run: Run, settings: Settings) -> None:
    """Train ``path`` with ``tools/train.py`` or, for ``gpus > 1``,
    ``tools/dist_train.sh``; the output goes to ``work_dir/train.log``."""
    tools = osp.join(REPO, 'tools')
    if settings.gpus > 1:
        cmd = ['bash', osp.join(tools, 'dist_train.sh'), path,
               str(settings.gpus)]
    else:
        cmd = [sys.executable, osp.join(tools, 'train.py'), path]
    cmd += ['--work-dir', run.work_dir]
    if has_checkpoint(run.work_dir):
        cmd.append('--resume')
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    # dist_train.sh runs `python`: make it this interpreter.
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env.get(
        'PATH', '')
    env.setdefault('PORT', str(_free_port()))
    if settings.threads:
        env['OMP_NUM_THREADS'] = str(settings.threads)
    log_file = osp.join(run.work_dir, 'train.log')
    with open(log_file, 'a') as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                              env=env, cwd=os.getcwd())
    if proc.returncode != 0:
        with open(log_file) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f'{" ".join(cmd)} failed with exit code '
                           f'{proc.returncode}; its output ends with:\n'
                           f'{tail}')


def execute(run: Run, settings: Settings, index: int = 1,
            total: int = 1, force: bool = False) -> dict:
    """Train ``run`` unless it already finished with the same config.

    Args:
        run (Run): The run.
        settings (Settings): Shared settings.
        index (int): Its number, for the progress line.
        total (int): The number of runs, for the progress line.
        force (bool): Train again even when finished.

    Returns:
        dict: ``state`` (what was found before), ``trained`` and the
        ``finished.json`` record.
    """
    cfg = build_run_config(run, settings)
    text = cfg.pretty_text
    digest = config_digest(text)
    state = run_state(run.work_dir, digest)
    prefix = f'[{index}/{total}] {run.name}: '
    if state == 'finished' and not force:
        record = read_finished(run.work_dir)
        log(f'{prefix}finished before ({record.get("wall_s", 0):.0f} s), '
            'skipped')
        return dict(state=state, trained=False, record=record)
    if state == 'stale' or (force and state != 'new'):
        log(f'{prefix}{run.work_dir} holds a run of another config'
            if state == 'stale' else f'{prefix}--force',
            level=logging.WARNING if state == 'stale' else logging.INFO)
        log(f'{prefix}training again from scratch')
        shutil.rmtree(run.work_dir)
    elif state == 'partial':
        log(f'{prefix}unfinished run found: resuming from its last '
            'checkpoint if it has one')
    path = config_file(run)
    write_config(cfg, path)
    write_json(osp.join(run.work_dir, STARTED), dict(digest=digest))
    log(f'{prefix}training in {run.work_dir}')
    start = time.perf_counter()
    if settings.subprocess or settings.gpus > 1:
        train_subprocess(path, run, settings)
    else:
        train_in_process(path, run, settings, prefix)
    wall_s = time.perf_counter() - start
    record = dict(
        digest=digest, wall_s=wall_s, config=run.config_path,
        variant=run.variant.spec or run.variant.kind, seed=run.seed,
        finished=time.strftime('%Y-%m-%d %H:%M:%S'))
    write_json(osp.join(run.work_dir, FINISHED), record)
    log(f'{prefix}done in {wall_s:.0f} s')
    return dict(state=state, trained=True, record=record)


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
    """

    name: str
    metric: str
    rule: str
    step_name: str
    summaries: List[VariantSummary]
    table: str
    plot: Optional[str] = None
    switches: str = ''


def collect(runs: Sequence[Run], metric: Optional[str] = None,
            rule: Optional[str] = None, plot_dir: Optional[str] = None
            ) -> List[ConfigResult]:
    """Read the logs of ``runs`` and compare the variants of each config.

    Args:
        runs (Sequence[Run]): The runs (see :func:`plan_runs`).
        metric (str, optional): Validation metric; found automatically
            otherwise (see :func:`~sema_mm.analysis.results.pick_metric`).
        rule (str, optional): ``'greater'`` or ``'less'``; from the
            metric's name otherwise.
        plot_dir (str, optional): Write ``<config>_<metric>.png`` here.

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
        plot = None
        if plot_dir is not None:
            os.makedirs(plot_dir, exist_ok=True)
            safe = chosen.replace('/', '_')
            plot = plot_curves(
                summaries, chosen, osp.join(plot_dir, f'{name}_{safe}.png'),
                title=name, step_name=step_name)
        switches = switch_table([(r.variant.label, r.seed, logs[id(r)])
                                 for r in mine])
        results.append(
            ConfigResult(name, chosen, how, step_name, summaries, table,
                         plot, switches))
    return results


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
        if res.switches:
            parts.append('SEMA switches per run:\n\n' + res.switches + '\n')
        if res.plot:
            parts.append(f'![{res.name}]({osp.relpath(res.plot, work_root)})'
                         '\n')
    text = '\n'.join(parts)
    os.makedirs(work_root, exist_ok=True)
    with open(osp.join(work_root, 'results.md'), 'w') as f:
        f.write(text)

    def clean(pair):
        return [None if math.isnan(v) else v for v in pair]

    data = [
        dict(config=r.name, metric=r.metric, rule=r.rule, variants=[
            dict(label=s.label, seeds=s.seeds, final=clean(s.final),
                 best=clean(s.best), best_step=s.best_step,
                 final_values=s.final_values, wall_s=clean(s.wall_s),
                 curve={str(k): v[0] for k, v in s.curve.items()})
            for s in r.summaries
        ]) for r in results
    ]
    write_json(osp.join(work_root, 'results.json'), data)
    return text


def compare(configs: Dict[str, str], variants: Sequence[Variant],
            seeds: Sequence[int], work_root: str,
            settings: Optional[Settings] = None,
            metric: Optional[str] = None, rule: Optional[str] = None,
            force: bool = False, train: bool = True, header: str = ''
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
        train (bool): False: only read what is there and report.
        header (str): Text put before the tables in ``results.md``.

    Returns:
        list: One :class:`ConfigResult` per config.
    """
    settings = settings or Settings()
    runs = plan_runs(configs, variants, seeds, work_root)
    if train:
        start = time.perf_counter()
        log(f'{len(runs)} runs: {len(configs)} config(s) x {len(seeds)} '
            f'seed(s) x {len(variants)} variant(s) under {work_root}')
        for i, run in enumerate(runs, 1):
            execute(run, settings, i, len(runs), force)
        log(f'all {len(runs)} runs done in '
            f'{time.perf_counter() - start:.0f} s')
    results = collect(runs, metric, rule, plot_dir=work_root)
    write_report(results, work_root, header)
    return results
