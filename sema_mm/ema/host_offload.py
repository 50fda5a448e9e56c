"""A host-held EMA updated beside training: copy on a side stream, lerp in a
worker thread.

``FusedEMA(device='cpu')`` of a model on a CUDA device keeps the average in
host memory. Done synchronously, each update copies the weights to the host
and waits for them while the GPU idles, then averages them on the host: the
next iteration starts only after both. :class:`HostOffload` moves that work
off the training loop's path, with the same numbers, bit for bit:

1. :meth:`HostOffload.lerp_` (the main thread, right after the optimizer
   step; it stands in for :meth:`TensorPairs.lerp_` in
   :func:`~sema_mm.ema.momentum.ema_step`): records an event on the
   model's current stream, snapshots the normalisation statistics
   (buffers) on that stream, and hands the update to the worker. No host
   synchronisation, a few CUDA calls.
2. The worker thread (one per :class:`HostOffload`, for its whole life):
   makes a side CUDA stream wait for that event (on the GPU, not the host),
   enqueues the copies of the weights into pinned host memory on it
   (``torch._foreach_copy_``: one call), records a second event after them,
   waits for it, and then runs the same ``lerp_`` as the synchronous update
   (:meth:`~sema_mm.ema.TensorPairs.lerp_`) on the host with its own torch
   thread count.
3. Before the next optimizer step (a global optimizer step pre-hook) the
   main thread makes its current stream wait for the copies' event: the
   step may only overwrite the weights once they were read. It first waits,
   on the host, until the worker has *recorded* that event (a wait on an
   event not yet recorded would return at once); the worker does so within
   a few milliseconds of the hand-over, long before the next step.

Why the statistics are snapshotted: the next forward pass updates the
normalisation layers' running statistics in place, and a forward is not
an optimizer step. Their copy on the model's stream, enqueued after the
optimizer step and before the next forward, is what the side stream reads
(a few small tensors). The next snapshot first waits (on the GPU) for the
previous copies.

Anything else that reads or writes the EMA (seed, switch, validation swap,
checkpoint, the end of training) calls :meth:`HostOffload.join` first, which
waits for every handed-over update and re-raises a worker's error;
``FusedEMA`` also joins when its ``module`` or its state dict is read.

On a CPU-only model the same machinery runs with the CPU as the "device":
the worker copies the weights (the step pre-hook then waits, on the host,
until the copy is done) and averages them. That is what the CPU tests
exercise; it is off by default for CPU models (``FusedEMA(overlap=...)``).

Assumption (as with any asynchronous EMA, e.g. NeMo's): between two
updates, the averaged parameters are written only by optimizer steps
(``torch.optim.Optimizer.step``) and the averaged buffers only by forward
passes or through SwitchEMAHook (which joins first).
"""
import queue
import threading
import weakref
from typing import List, Optional

import torch
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from ..compat.torch_ops import foreach_copy_, foreach_lerp_
from .tensor_pairs import TensorPairs

#: Name of the worker threads (one per host-held EMA).
THREAD_NAME = 'sema_mm-host-ema'


def default_host_threads() -> int:
    """Torch CPU threads of the worker's ``lerp_``: half of the process's
    (at least 1), leaving the other half to the training loop."""
    return max(1, torch.get_num_threads() // 2)


class _Task:
    """One handed-over update."""

    def __init__(self, weight: float, step_done) -> None:
        self.weight = weight
        self.step_done = step_done  # CUDA event after the step, or None
        self.copied = None  # CUDA event after the copies, or None
        self.issued = threading.Event()  # copies enqueued (CPU: done)


class HostOffload:
    """Overlapped updates of a host-held average (see the module docstring).

    Args:
        pairs (TensorPairs): The EMA's (averaged, source) tensors; every
            averaged tensor is on the CPU.
        snapshot (List[Tensor]): Source tensors written by forward passes
            (normalisation statistics), snapshotted at submission.
        threads (int, optional): Torch CPU threads of the worker's
            ``lerp_``. Defaults to :func:`default_host_threads`.
    """

    def __init__(self, pairs: TensorPairs, snapshot: List[Tensor],
                 threads: Optional[int] = None) -> None:
        self.pairs = pairs
        groups = pairs.groups()
        self.threads = threads or default_host_threads()
        devices = {s.device for _, src in groups for s in src}
        cuda = [d for d in devices if d.type == 'cuda']
        if len(cuda) > 1 or (cuda and len(devices) > 1):
            raise ValueError(
                'an overlapped host EMA needs the model\'s averaged tensors '
                f'on one device, found {sorted(map(str, devices))}; set '
                'overlap=False.')
        self.device = cuda[0] if cuda else torch.device('cpu')
        self.cuda = bool(cuda)
        snap_ids = {id(t) for t in snapshot}
        self._avg: List[List[Tensor]] = []
        self._src: List[List[Tensor]] = []  # what the worker copies
        self._staged: List[List[Tensor]] = []
        live, copies = [], []
        with torch.no_grad():
            for avg, src in groups:
                reads = []
                for s in src:
                    if id(s) in snap_ids:
                        copy = torch.empty_like(s)
                        live.append(s)
                        copies.append(copy)
                        s = copy
                    reads.append(s)
                self._avg.append(list(avg))
                self._src.append(reads)
                self._staged.append(self._staging(avg, pin=self.cuda))
        self._snap_live, self._snap_copies = live, copies
        self._queue: 'queue.Queue[Optional[_Task]]' = queue.Queue()
        self._last: Optional[_Task] = None
        self._pending = 0
        self._lock = threading.Condition()
        self._error: Optional[BaseException] = None
        self.updates_done = 0
        self._thread: Optional[threading.Thread] = None
        self._stream = (torch.cuda.Stream(self.device) if self.cuda else None)
        ref = weakref.ref(self)
        self._hook = register_optimizer_step_pre_hook(
            lambda *args: _before_step(ref))
        # Neither the hook nor the worker keeps this object alive: when it
        # is collected, the hook goes and the worker ends.
        weakref.finalize(self, self._hook.remove)
        weakref.finalize(self, self._queue.put, None)

    @staticmethod
    def _staging(avg: List[Tensor], pin: bool) -> List[Tensor]:
        """Host buffers shaped as ``avg``: one allocation per group (pinned
        when copying from a GPU), viewed per tensor."""
        flat = torch.empty(sum(a.numel() for a in avg), dtype=avg[0].dtype,
                           pin_memory=pin)
        views, start = [], 0
        for a in avg:
            views.append(flat[start:start + a.numel()].view(a.shape))
            start += a.numel()
        return views

    # ------------------------------------------------------- main thread
    def copy_to_averaged(self) -> None:
        """Join, then seed the average from the sources (synchronously)."""
        self.join()
        self.pairs.copy_to_averaged()

    def lerp_(self, weight: float) -> None:
        """Hand over ``avg = lerp(avg, src, weight)`` for the weights as
        they are after the work enqueued so far (no host synchronisation)."""
        self._raise_error()
        previous = self._last
        step_done = None
        if self.cuda:
            stream = torch.cuda.current_stream(self.device)
            if previous is not None:  # its copies read the old snapshot
                previous.issued.wait()
                if previous.copied is not None:
                    stream.wait_event(previous.copied)
            if self._snap_live:
                foreach_copy_(self._snap_copies, self._snap_live)
            step_done = torch.cuda.Event()
            step_done.record(stream)
        else:
            if previous is not None:
                previous.issued.wait()
            if self._snap_live:
                foreach_copy_(self._snap_copies, self._snap_live)
        task = _Task(weight, step_done)
        with self._lock:
            self._pending += 1
        self._last = task
        self._start()
        self._queue.put(task)

    def before_step(self) -> None:
        """Make the coming optimizer step wait until the last handed-over
        update has read the weights (on the GPU when it is one)."""
        task = self._last
        if task is None:
            return
        task.issued.wait()
        if task.copied is not None:
            torch.cuda.current_stream(self.device).wait_event(task.copied)

    def join(self) -> None:
        """Wait until every handed-over update is in the average; re-raise
        an error of the worker."""
        with self._lock:
            while self._pending:
                self._lock.wait()
        self._last = None  # nothing left for a step to wait for
        self._raise_error()

    def close(self) -> None:
        """Join and stop the worker thread (the next :meth:`lerp_` starts
        a new one)."""
        try:
            self.join()
        finally:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._thread = None

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(
                'SwitchEMAHook: the host-held EMA\'s update failed in its '
                'worker thread') from error

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=_work, args=(self._queue, weakref.ref(self),
                                    self.threads),
                name=THREAD_NAME, daemon=True)
            self._thread.start()

    # ------------------------------------------------------------ worker
    def _finish(self, task: _Task, error: Optional[BaseException]) -> None:
        """Mark ``task`` done (with the worker's ``error``, if any)."""
        if error is not None:
            self._error = error
        task.issued.set()
        with self._lock:
            self._pending -= 1
            self._lock.notify_all()

    @torch.no_grad()
    def _update(self, task: _Task) -> None:
        if self.cuda:
            with torch.cuda.stream(self._stream):
                self._stream.wait_event(task.step_done)
                for staged, src in zip(self._staged, self._src):
                    foreach_copy_(staged, src, non_blocking=True)
                task.copied = torch.cuda.Event()
                task.copied.record(self._stream)
            task.issued.set()
            task.copied.synchronize()
        else:
            for staged, src in zip(self._staged, self._src):
                foreach_copy_(staged, src)
            task.issued.set()
        for avg, staged in zip(self._avg, self._staged):
            foreach_lerp_(avg, staged, task.weight)
        self.updates_done += 1


def host_offload_for(pairs: TensorPairs, model: nn.Module,
                     overlap: Optional[bool],
                     threads: Optional[int] = None) -> Optional[HostOffload]:
    """The overlapped updates of ``pairs`` (an EMA of ``model``), or None
    for synchronous ones.

    Args:
        pairs (TensorPairs): The EMA's (averaged, source) tensors.
        model (nn.Module): The averaged model's source; its buffers among
            the pairs are snapshotted (see :class:`HostOffload`).
        overlap (bool, optional): True: overlap (the averaged tensors are on
            the CPU). None: overlap when the averaged tensors are on the
            CPU and the source tensors on one CUDA device. False: never.
        threads (int, optional): See :class:`HostOffload`.
    """
    avg, src = pairs.averaged_tensors(), pairs.source_tensors()
    if not avg or any(t.device.type != 'cpu' for t in avg):
        return None
    devices = {t.device for t in src}
    if not (overlap or (overlap is None and len(devices) == 1
                        and devices.pop().type == 'cuda')):
        return None
    buffers = {n for n, _ in model.named_buffers()}
    snapshot = [t for n, t in zip(pairs.grouped_names, src) if n in buffers]
    return HostOffload(pairs, snapshot, threads)


def _work(tasks: 'queue.Queue[Optional[_Task]]', ref,
          threads: int) -> None:
    """The worker thread: run the handed-over updates in order until a
    None arrives. It holds its :class:`HostOffload` only while it runs a
    task."""
    torch.set_num_threads(threads)
    while True:
        task = tasks.get()
        offload = ref()
        if task is None or offload is None:
            return
        error = None
        try:
            offload._update(task)
        except BaseException as e:  # re-raised in the main thread
            error = e
        offload._finish(task, error)
        del offload


def _before_step(ref) -> None:
    """The optimizer step pre-hook of a :class:`HostOffload` (held weakly,
    so that the hook does not keep it alive)."""
    offload = ref()
    if offload is not None:
        offload.before_step()
