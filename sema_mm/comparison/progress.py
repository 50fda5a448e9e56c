"""One status line per run of a comparison, updated in place.

:class:`ProgressBoard` shows every run of a comparison with its state
(``queued``, ``running``, ``done``, ``failed``), its epoch (or iteration),
the last value of the compared metric and, while it runs, an estimate of
the time left; a head line counts the runs in each state. On a terminal the
lines are redrawn in place (at most a few times a second); when the output
is not a terminal (a CI log, a file) one plain line is printed per change of
state instead, plus a heartbeat (the head line and every running run's line)
when nothing was printed for ``heartbeat_s`` seconds. Messages (warnings,
resubmissions) go above the lines.

Where the numbers come from:

* a run trained in this process reports through :class:`BoardHook`, an
  mmengine hook;
* a run trained by another process (a local job, a slurm job) is read from
  its ``vis_data/scalars.json`` by :class:`ScalarsFollower`, which reads
  only what was appended since the last look.
"""
import json
import os.path as osp
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Dict, List, Optional, Sequence

from mmengine.hooks import Hook

from ..switching.scalars import PREFIX as SWITCH_PREFIX
from .metric_format import format_metric
from .results import KNOWN_METRICS, NOT_METRICS, find_log_dirs

#: States of a run, in the order the head line counts them.
STATES = ('done', 'running', 'queued', 'failed')
#: Fewest seconds between two redraws on a terminal (changes of state are
#: drawn at once).
REDRAW_S = 0.25


def format_duration(seconds: float) -> str:
    """``'42 s'``, ``'3:07'`` or ``'1:02:03'``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f'{seconds} s'
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f'{hours}:{minutes:02d}:{sec:02d}' if hours else \
        f'{minutes}:{sec:02d}'


def choose_metric(values: Dict[str, object],
                  metric: Optional[str] = None) -> Optional[str]:
    """The metric to show from a validation's ``values``: ``metric`` if
    given and present, else the first of
    :data:`~sema_mm.comparison.results.KNOWN_METRICS`, else the first other
    numeric key (sorted)."""
    numeric = sorted(
        k for k, v in values.items()
        if k not in NOT_METRICS and isinstance(v, (int, float)))
    if metric is not None:
        return metric if metric in numeric else None
    for known in KNOWN_METRICS:
        if known in numeric:
            return known
    return numeric[0] if numeric else None


@dataclass
class RunProgress:
    """What the board knows about one run.

    Attributes:
        name (str): The run's name on its line.
        state (str): One of :data:`STATES`.
        unit (str): ``'epoch'`` or ``'iter'``.
        total (int, optional): Epochs (iterations) of training.
        done (int): Epochs (iterations) finished.
        metric (str, optional): Name of the metric shown.
        value (float, optional): Its last value.
        detail (str): Shown at the end of the line (job id, log path...).
        wall_s (float, optional): Training time of a finished run.
    """

    name: str
    state: str = 'queued'
    unit: str = 'epoch'
    total: Optional[int] = None
    done: int = 0
    metric: Optional[str] = None
    value: Optional[float] = None
    detail: str = ''
    wall_s: Optional[float] = None
    _since: Optional[tuple] = field(default=None, repr=False)
    _last: Optional[tuple] = field(default=None, repr=False)

    def observe(self, done: int, now: Optional[float] = None) -> None:
        """Record that ``done`` epochs (iterations) are finished."""
        now = time.monotonic() if now is None else now
        if self._since is None or done < self._since[1]:
            self._since = (now, done)
        if done != self.done or self._last is None:
            self._last = (now, done)
        self.done = done

    def eta(self, now: Optional[float] = None) -> Optional[float]:
        """Seconds left, from the pace since this board first saw the run
        running (None until one epoch or iteration has finished since)."""
        if self.total is None or self._since is None or self._last is None:
            return None
        (t0, d0), (t1, d1) = self._since, self._last
        if d1 <= d0:
            return None
        now = time.monotonic() if now is None else now
        left = (t1 - t0) / (d1 - d0) * (self.total - d1) - (now - t1)
        return max(0.0, left)

    def step_text(self) -> str:
        """``'epoch 3/30'``: the epoch in progress while running (or when it
        failed), the epochs finished otherwise."""
        if self.total is None and not self.done:
            return ''
        current = self.done
        if self.state in ('running', 'failed') and (
                self.total is None or self.done < self.total):
            current = self.done + 1 if self.unit == 'epoch' else self.done
        total = '' if self.total is None else f'/{self.total}'
        return f'{self.unit} {current}{total}'

    def line(self, width: int = 0) -> str:
        """The run's status line, cut to ``width`` characters if > 0."""
        parts = [f'{self.name:<{width}}' if width else self.name,
                 f'{self.state:<7}']
        if self.state != 'queued':
            parts.append(self.step_text())
        if self.value is not None:
            parts.append(f'{self.metric} {format_metric(self.value)}')
        if self.state == 'running':
            eta = self.eta()
            if eta is not None:
                parts.append(f'ETA {format_duration(eta)}')
        elif self.state == 'done' and self.wall_s is not None:
            parts.append(format_duration(self.wall_s))
        if self.detail:
            parts.append(self.detail)
        return '  '.join(p for p in parts if p).rstrip()


class ProgressBoard:
    """The status lines of the runs of a comparison.

    Args:
        names (dict): Run key -> the name shown, in display order.
        stream (IO, optional): Where to write; ``sys.stdout`` by default.
        mode (str): ``'tty'`` (redraw in place), ``'plain'`` (a line per
            change of state) or ``'auto'`` (``'tty'`` when ``stream`` is a
            terminal).
        metric (str, optional): Metric to show; found in the logs
            otherwise (see :func:`choose_metric`).
        title (str): Start of the head line.
        heartbeat_s (float, optional): Plain mode: print the head line and
            the running runs' lines when nothing was printed for this many
            seconds (None: never). Defaults to 600.
    """

    def __init__(self, names: Dict[str, str], stream: Optional[IO] = None,
                 mode: str = 'auto', metric: Optional[str] = None,
                 title: str = 'compare',
                 heartbeat_s: Optional[float] = 600.0) -> None:
        self.stream = stream if stream is not None else sys.stdout
        if mode == 'auto':
            isatty = getattr(self.stream, 'isatty', None)
            mode = 'tty' if isatty is not None and isatty() else 'plain'
        if mode not in ('tty', 'plain'):
            raise ValueError(f"mode must be 'auto', 'tty' or 'plain', got "
                             f'{mode!r}')
        self.mode = mode
        self.metric = metric
        self.title = title
        self.runs = {key: RunProgress(name) for key, name in names.items()}
        self._width = max([len(n) for n in names.values()] + [0])
        self._drawn = 0
        self._last_draw = 0.0
        self._start = time.monotonic()
        self.heartbeat_s = heartbeat_s
        self._last_print = self._start

    # ------------------------------------------------------------ updates
    def update(self, key: str, state: Optional[str] = None,
               done: Optional[int] = None, total: Optional[int] = None,
               unit: Optional[str] = None,
               values: Optional[Dict[str, object]] = None,
               detail: Optional[str] = None,
               wall_s: Optional[float] = None) -> None:
        """Change what is known about run ``key`` and show it (in plain
        mode: print its line when its state or detail changed).

        Args:
            key (str): The run.
            state (str, optional): New state (one of :data:`STATES`).
            done (int, optional): Epochs (iterations) finished.
            total (int, optional): Epochs (iterations) of training.
            unit (str, optional): ``'epoch'`` or ``'iter'``.
            values (dict, optional): A validation's metrics; the shown
                metric's value is taken from it.
            detail (str, optional): Text at the end of the line.
            wall_s (float, optional): Training time of a finished run.
        """
        run = self.runs[key]
        changed = (state is not None and state != run.state) or (
            detail is not None and detail != run.detail)
        if state is not None:
            if state not in STATES:
                raise ValueError(f'unknown state {state!r}')
            run.state = state
        if total is not None:
            run.total = total
        if unit is not None:
            run.unit = unit
        if done is not None:
            run.observe(done)
        if values:
            name = choose_metric(values, run.metric or self.metric)
            if name is not None:
                run.metric, run.value = name, float(values[name])
        if detail is not None:
            run.detail = detail
        if wall_s is not None:
            run.wall_s = wall_s
        if self.mode == 'tty':
            self.draw(force=changed)
        elif changed:
            self._print(self.plain_line(key))
        else:
            self.heartbeat()

    def counts(self) -> Dict[str, int]:
        """Runs per state."""
        counts = {s: 0 for s in STATES}
        for run in self.runs.values():
            counts[run.state] += 1
        return counts

    def head(self) -> str:
        """``'compare: 9 runs: 3 done, 2 running, 4 queued, 0 failed'``."""
        counts = self.counts()
        text = ', '.join(f'{counts[s]} {s}' for s in STATES)
        return f'{self.title}: {len(self.runs)} runs: {text}'

    def plain_line(self, key: str) -> str:
        """The line printed for a change of state of ``key`` in plain
        mode: the run's line and the counts."""
        counts = self.counts()
        done = counts['done'] + counts['failed']
        return f'[{done}/{len(self.runs)}] {self.runs[key].line()}'

    # ------------------------------------------------------------- output
    def lines(self) -> List[str]:
        """The head line and the runs' lines (on a small terminal, the
        running and failed runs first, then as many others as fit)."""
        size = shutil.get_terminal_size((100, 40))
        runs = list(self.runs.values())
        room = max(3, size.lines - 3)
        if len(runs) > room:
            first = [r for r in runs if r.state in ('running', 'failed')]
            rest = [r for r in runs if r not in first]
            shown = (first + rest)[:room - 1]
            hidden = len(runs) - len(shown)
            runs = shown
        else:
            hidden = 0
        out = [self.head() + f'  ({format_duration(self.elapsed())})']
        out += ['  ' + r.line(self._width) for r in runs]
        if hidden:
            out.append(f'  ... and {hidden} more')
        return [line[:size.columns - 1] for line in out]

    def elapsed(self) -> float:
        """Seconds since the board was made."""
        return time.monotonic() - self._start

    def draw(self, force: bool = True) -> None:
        """Redraw the lines in place (terminal mode only)."""
        if self.mode != 'tty':
            return
        now = time.monotonic()
        if not force and now - self._last_draw < REDRAW_S:
            return
        self._last_draw = now
        lines = self.lines()
        text = f'\x1b[{self._drawn}A' if self._drawn else ''
        text += ''.join(f'\r\x1b[2K{line}\n' for line in lines)
        text += '\x1b[J'
        self._drawn = len(lines)
        self.stream.write(text)
        self.stream.flush()

    def clear(self) -> None:
        """Remove the drawn lines (terminal mode), e.g. before a message."""
        if self.mode == 'tty' and self._drawn:
            self.stream.write(f'\x1b[{self._drawn}A\r\x1b[J')
            self.stream.flush()
            self._drawn = 0

    def heartbeat(self) -> None:
        """Plain mode: print the head line with the time so far and the
        running runs' lines if nothing was printed for ``heartbeat_s``."""
        if self.mode != 'plain' or self.heartbeat_s is None or \
                time.monotonic() - self._last_print < self.heartbeat_s:
            return
        lines = [f'{self.head()}  ({format_duration(self.elapsed())})']
        lines += ['  ' + r.line() for r in self.runs.values()
                  if r.state == 'running']
        self._print('\n'.join(lines))

    def _print(self, text: str) -> None:
        self.stream.write(text + '\n')
        self.stream.flush()
        self._last_print = time.monotonic()

    def note(self, message: str) -> None:
        """Show ``message`` above the lines."""
        self.clear()
        self._print(message)
        self.draw()

    def close(self, timed: bool = True) -> None:
        """Draw the final state (terminal), or print the counts (plain),
        with the time since the board was made if ``timed``."""
        if self.mode == 'tty':
            self.draw()
        else:
            took = f' in {format_duration(self.elapsed())}' if timed else ''
            self._print(self.head() + took)

    def writer(self) -> 'BoardWriter':
        """A stream for a logging handler: what it writes appears above
        the lines."""
        return BoardWriter(self)


class BoardWriter:
    """A file-like object writing above a :class:`ProgressBoard`'s lines."""

    def __init__(self, board: ProgressBoard) -> None:
        self.board = board

    def write(self, text: str) -> int:
        if text.strip():
            self.board.note(text.rstrip('\n'))
        return len(text)

    def flush(self) -> None:
        self.board.stream.flush()

    def isatty(self) -> bool:
        return False


# ------------------------------------------------------------ sources
class BoardHook(Hook):
    """Reports the progress of a run trained in this process to a board:
    the epoch (iteration) at its start and after each, and the metrics
    after each validation.

    Args:
        board (ProgressBoard): The board.
        key (str): The run's key on it.
    """

    priority = 'LOWEST'

    def __init__(self, board: ProgressBoard, key: str) -> None:
        self.board = board
        self.key = key

    @staticmethod
    def _by_epoch(runner) -> bool:
        return hasattr(runner.train_loop, 'max_epochs')

    def before_train(self, runner) -> None:
        if self._by_epoch(runner):
            self.board.update(self.key, done=runner.epoch, unit='epoch',
                              total=runner.max_epochs)
        else:
            self.board.update(self.key, done=runner.iter, unit='iter',
                              total=runner.max_iters)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if not self._by_epoch(runner):
            self.board.update(self.key, done=runner.iter + 1)

    def after_train_epoch(self, runner) -> None:
        # Called before the loop counts the epoch: runner.epoch is its
        # 0-based index.
        self.board.update(self.key, done=runner.epoch + 1)

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self.board.update(self.key, values=metrics or {})


class ScalarsFollower:
    """Follows what a run in another process logs to its
    ``<timestamp>/vis_data/scalars.json`` files (a resumed run starts a new
    one), reading only the lines appended since the last call.

    Args:
        work_dir (str): The run's work dir.
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir
        self._offsets: Dict[str, int] = {}
        self.epoch: Optional[int] = None
        self.iter: Optional[int] = None
        self.val_step: Optional[int] = None
        self.val: Dict[str, object] = {}

    def _rows(self, path: str) -> Sequence[dict]:
        offset = self._offsets.get(path, 0)
        try:
            with open(path, 'rb') as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b'\n') + 1  # only complete lines
        self._offsets[path] = offset + end
        rows = []
        for line in data[:end].splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
        return rows

    def poll(self) -> 'ScalarsFollower':
        """Read what was appended; update :attr:`epoch` (the epoch of the
        last training line), :attr:`iter`, :attr:`val_step` and :attr:`val`
        (the last validation's values)."""
        for log_dir in find_log_dirs(self.work_dir):
            path = osp.join(log_dir, 'vis_data', 'scalars.json')
            for row in self._rows(path):
                if 'iter' in row:
                    self.iter = int(row['iter'])
                    if 'epoch' in row:
                        self.epoch = int(row['epoch'])
                elif 'step' in row and choose_metric(row) is not None \
                        and not any(k.startswith(SWITCH_PREFIX) for k in row):
                    self.val_step = int(row['step'])
                    self.val = row
        return self

    def done(self, unit: str) -> int:
        """Epochs (``unit='epoch'``) or iterations finished, as far as the
        log tells."""
        if unit != 'epoch':
            return self.iter or 0
        finished = (self.epoch - 1) if self.epoch else 0
        return max(finished, self.val_step or 0)
