"""SwitchEMAHook and FusedEMA on a CUDA device (skipped without one).

Run with ``make test-gpu``. Needs only torch, mmengine, pytest and this
repository (no mmcv, mmdet or mmpretrain): the runs use the toy task of
``tests/toy.py`` and compare with the plain-PyTorch Algorithm 1 of
``tests/test_switch_ema_hook.py``, built on the GPU here.

The Runners here set ``randomness.deterministic=False``: the toy config's
``True`` turns on torch's deterministic mode, which raises on CUDA for ops the
toy model uses (torch's docs list NLLLoss, and cuBLAS needs
``CUBLAS_WORKSPACE_CONFIG``). The runs and their references still take the
same deterministic kernels: every test sets cuDNN to deterministic
algorithms without benchmarking (restored after it).
"""
from typing import Dict, List

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import get_priority
from torch import nn

import tests.test_switch_ema_hook as plain
from sema_mm.ema import FusedEMA
from tests.toy import ToyClassifier, toy_config
from tests.utils import Probe, assert_close, make_runner, params, sema_hook

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs a CUDA device')

M = plain.M  # 8 updates per epoch of the toy task
AMP_SGD = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)


@pytest.fixture(autouse=True)
def cuda_settings():
    """Deterministic cuDNN kernels, torch's deterministic mode off and the
    sync debug mode at its default for every test; all restored after."""
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark,
             torch.cuda.get_sync_debug_mode())
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.cuda.set_sync_debug_mode(0)
    yield
    torch.cuda.set_sync_debug_mode(saved[4])
    torch.backends.cudnn.deterministic = saved[2]
    torch.backends.cudnn.benchmark = saved[3]
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])


@pytest.fixture
def cuda_reference(monkeypatch):
    """``reference_sema`` of tests/test_switch_ema_hook.py with its model
    (and so its data, optimizer state and EMA) on the GPU."""
    monkeypatch.setattr(plain, 'ToyClassifier',
                        lambda: ToyClassifier().cuda())
    return plain.reference_sema


def cuda_runner(work_dir, hooks=(), **overrides):
    """A toy-task Runner; mmengine puts the model on the GPU itself."""
    overrides.setdefault('randomness', dict(seed=0, deterministic=False))
    runner = make_runner(work_dir, hooks=hooks, **overrides)
    assert all(p.is_cuda for p in runner.model.parameters())
    return runner


def sema(**kwargs) -> List[dict]:
    """``custom_hooks`` with one SwitchEMAHook of momentum ``M``."""
    return [dict(type='SwitchEMAHook', momentum=M, **kwargs)]


def on_cuda(tensors: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k: v.cuda() for k, v in tensors.items()}


def ema_of_iterates(probe: Probe, m: float = M) -> List[Dict]:
    """Per epoch, ``ema = (1 - m) * ema + m * w`` over the weights ``w`` the
    probe saw after every iteration, from the initial weights."""
    it = iter(probe.after_iter)
    ema = {
        k: v.clone()
        for k, v in probe.init_state.items() if k in probe.after_iter[0]
    }
    history = []
    for batches in probe.batches:
        for _ in batches:
            w = next(it)
            for k in ema:
                ema[k].mul_(1 - m).add_(w[k], alpha=m)
        history.append({k: v.clone() for k, v in ema.items()})
    return history


@pytest.mark.parametrize('ema_device', [None, 'cpu'])
def test_follows_algorithm_1_on_cuda(tmp_path, cuda_reference, ema_device):
    """A model on the GPU, the EMA on it or on the host: the weights after
    every switch and the EMA match the plain-PyTorch loop on the GPU (same
    batches, same initial weights)."""
    probe = Probe()
    extra = {} if ema_device is None else dict(device=ema_device)
    runner = cuda_runner(tmp_path, [probe], custom_hooks=sema(**extra))
    runner.train()
    hook = sema_hook(runner)
    assert hook.num_switches == 4
    assert {p.device.type for p in hook.ema_model.module.parameters()} == \
        {ema_device or 'cuda'}
    ref = cuda_reference(probe.init_state, probe.batches)
    for (ema, switched), model_after, ema_after in zip(
            ref, probe.after_epoch, probe.ema_after_epoch):
        assert_close(model_after, switched)
        assert_close(on_cuda(ema_after), ema)
        assert_close(model_after, ema)  # the switch happened


class BusyGPU:
    """Queues long work on the current CUDA stream: a spin kernel of tens of
    milliseconds and ``matmuls`` 8192 x 8192 matmuls."""

    def __init__(self, matmuls: int = 4) -> None:
        self.a = torch.randn(8192, 8192, device='cuda')
        self.out = torch.empty_like(self.a)
        self.matmuls = matmuls

    def __call__(self) -> None:
        torch.cuda._sleep(50_000_000)  # clock cycles
        for _ in range(self.matmuls):
            torch.mm(self.a, self.a, out=self.out)


@torch.no_grad()
def test_cpu_ema_of_cuda_model_is_exact_while_gpu_busy():
    """``FusedEMA(device='cpu', overlap=False)`` of a CUDA model (the
    synchronous update; the overlapped one is tested below): each update
    reads the weights the GPU writes just before it, behind long queued
    work.

    The new weights are fresh N(0, 1) draws written on the GPU's stream after
    the busy work: an update that read its staging buffers before the copy
    from the GPU landed (previous or uninitialised values) would be off by
    about ``m`` (0.5 here), not by rounding.
    """
    m, updates = 0.5, 6
    g = torch.Generator().manual_seed(0)
    shapes = [(1 << 22, ), (1024, 1024), (3, 1 << 18), (1000, )]
    model = nn.ParameterList(
        nn.Parameter(torch.randn(s, generator=g).cuda()) for s in shapes)
    ema = FusedEMA(model, momentum=m, device='cpu', overlap=False)
    ema.update_parameters(model)  # the first call copies the model
    expected = [p.detach().to('cpu', copy=True) for p in model]
    busy_gpu = BusyGPU()
    busy_seen = 0
    for _ in range(updates):
        new_cpu = [torch.randn(s, generator=g) for s in shapes]
        new_gpu = [t.cuda() for t in new_cpu]
        busy_gpu()
        for p, t in zip(model, new_gpu):
            p.copy_(t)  # runs on the GPU after the busy work
        busy_seen += not torch.cuda.current_stream().query()
        ema.update_parameters(model)
        expected = [torch.lerp(e, t, m) for e, t in zip(expected, new_cpu)]
        for i, (avg, exp) in enumerate(zip(ema.module, expected)):
            assert avg.device.type == 'cpu'
            err = (avg - exp).abs().max().item()
            assert err <= 1e-6, f'tensor {i}: max abs error {err}'
    # The GPU still had work queued when the updates began (else the test
    # proves nothing about waiting).
    assert busy_seen == updates


@torch.no_grad()
def test_cpu_ema_switch_and_swap_with_cuda_model_while_gpu_busy():
    """The switch (host to GPU) and the validation swap (both ways) of a
    CPU-held EMA see the weights the GPU writes just before them."""
    g = torch.Generator().manual_seed(1)
    shapes = [(1 << 22, ), (512, 512)]
    model = nn.ParameterList(
        nn.Parameter(torch.randn(s, generator=g).cuda()) for s in shapes)
    ema = FusedEMA(model, momentum=0.5, device='cpu')
    pairs = ema.pairs_for(model)
    ema.seed(model)
    busy_gpu = BusyGPU()
    for p in ema.module:
        p.normal_(generator=g)
    ema_before = [p.clone() for p in ema.module]
    written = [torch.randn(s, generator=g) for s in shapes]
    written_gpu = [t.cuda() for t in written]
    busy_gpu()
    for p, t in zip(model, written_gpu):
        p.copy_(t)
    pairs.swap()
    for avg, model_p, old, new in zip(ema.module, model, ema_before,
                                      written):
        assert torch.equal(avg, new)  # the EMA got what the GPU wrote
        assert torch.equal(model_p.cpu(), old)  # the model got the EMA
    busy_gpu()
    pairs.copy_to_source()  # the switch, behind queued work
    for p in model:
        p.mul_(2)  # after the switch, in stream order
    for avg, model_p in zip(ema.module, model):
        assert torch.equal(model_p.cpu(), 2 * avg)


def _train_with_host_ema(overlap: bool, grads, stats, busy_gpu):
    """A 4096 x 4096 linear layer and a BatchNorm on the GPU, stepped by SGD
    with the given gradients; after each step its EMA on the host is
    updated and then a "forward pass" writes the BatchNorm statistics.
    Busy GPU work is queued before every other step, none before the
    others, so the copies of an overlapped update wait for a step still
    queued, and the next step follows at once. Returns the EMA's averaged
    tensors and how many overlapped updates were handed over while the
    GPU was still busy."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4096, 4096), nn.BatchNorm1d(4096)).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    # The worker's lerp_ with the main thread's CPU threads: the same
    # parallel split as the synchronous update.
    ema = FusedEMA(model, momentum=0.25, device='cpu', update_buffers=True,
                   overlap=overlap, host_threads=torch.get_num_threads())
    ema.update_parameters(model)  # the first call copies the model
    busy_seen = 0
    for k, (step_grads, (mean, var)) in enumerate(zip(grads, stats)):
        if k % 2 == 0:
            busy_gpu()
        for p, g in zip(model.parameters(), step_grads):
            p.grad = g
        opt.step()
        ema.update_parameters(model)
        busy_seen += not torch.cuda.current_stream().query()
        with torch.no_grad():  # what a forward pass does to BatchNorm
            model[1].running_mean.mul_(0.5).add_(mean)
            model[1].running_var.mul_(0.5).add_(var)
    ema.join()
    assert (ema._offload is not None) == overlap
    averaged = {n: t.clone() for n, t in ema.module.state_dict().items()
                if n in ema.averaged_names}
    assert set(averaged) == set(ema.averaged_names)
    return averaged, busy_seen


@torch.no_grad()
def test_overlapped_host_ema_equals_synchronous_while_gpu_busy():
    """``FusedEMA(device='cpu')`` of a CUDA model with its updates
    overlapped (side-stream copy, host ``lerp_`` in a worker thread, the
    next optimizer step waiting on the GPU for the copy, the statistics
    snapshotted before the next forward) gives the synchronous update's
    EMA bit for bit, behind long queued GPU work."""
    g = torch.Generator(device='cuda').manual_seed(0)
    shapes = [(4096, 4096), (4096, ), (4096, ), (4096, )]
    steps = 8
    grads = [[torch.randn(s, generator=g, device='cuda') for s in shapes]
             for _ in range(steps)]
    stats = [(torch.randn(4096, generator=g, device='cuda'),
              torch.rand(4096, generator=g, device='cuda'))
             for _ in range(steps)]
    busy_gpu = BusyGPU()
    overlapped, busy_seen = _train_with_host_ema(True, grads, stats,
                                                 busy_gpu)
    synchronous, _ = _train_with_host_ema(False, grads, stats, busy_gpu)
    for name, tensor in synchronous.items():
        assert torch.equal(overlapped[name], tensor), name
    # The GPU still had work queued when the overlapped updates were
    # handed over after the busy steps (else this proves nothing).
    assert busy_seen >= steps // 2


class EvalProbe(Probe):
    """A :class:`Probe` that also records the weights in and after
    testing."""

    def __init__(self, priority='LOW') -> None:
        super().__init__(priority)
        self.seen_in_test: List[Dict] = []
        self.seen_after_test: List[Dict] = []

    def before_test_epoch(self, runner) -> None:
        self.seen_in_test.append(params(runner.model))

    def after_test_epoch(self, runner, metrics=None) -> None:
        self.seen_after_test.append(params(runner.model))


def with_test_loop() -> dict:
    """Runner overrides adding a test loop on the validation data."""
    cfg = toy_config('unused')
    return dict(test_dataloader=cfg['val_dataloader'],
                test_evaluator=cfg['val_evaluator'], test_cfg=dict())


@pytest.mark.parametrize('switch_interval', [1, 2])
def test_validation_and_test_swaps_on_cuda(tmp_path, cuda_reference,
                                           switch_interval):
    """Validation and test evaluate the EMA on the GPU, and the model has
    its own weights back after them: right after a switch (interval 1) and
    while the EMA differs from the model (interval 2, after epochs 1 and
    3)."""
    probe = EvalProbe()  # LOW: after SwitchEMAHook's swaps
    runner = cuda_runner(
        tmp_path, [probe],
        custom_hooks=sema(switch_interval=switch_interval),
        train_cfg=dict(by_epoch=True, max_epochs=3, val_interval=1),
        **with_test_loop())
    runner.train()
    ref = cuda_reference(probe.init_state, probe.batches,
                         switch_every=switch_interval)
    assert len(probe.seen_in_val) == 3
    for epoch, (ema, model) in enumerate(ref):
        assert_close(probe.seen_in_val[epoch], ema)
        assert_close(probe.seen_after_val[epoch], model)
    ema_end, model_end = ref[-1]
    if switch_interval == 2:
        # Epochs 1 and 3 end without a switch: the model differs from the EMA.
        for ema, model in (ref[0], ref[2]):
            assert not torch.allclose(ema['head.weight'],
                                      model['head.weight'])
    # A test loop after training (as a script might run it) swaps too.
    runner.test_loop.run()
    assert_close(probe.seen_in_test[-1], ema_end)
    assert_close(probe.seen_after_test[-1], model_end)
    # tools/test.py: load_from a checkpoint, whose state_dict is the EMA.
    tester = cuda_runner(tmp_path / 'test', [probe], custom_hooks=sema(),
                         load_from=str(tmp_path / 'epoch_3.pth'),
                         **with_test_loop())
    tester.test()
    assert_close(probe.seen_in_test[-1], ema_end)
    assert_close(probe.seen_after_test[-1], ema_end)


class StepProbe(Probe):
    """A :class:`Probe` that also records the weights before each iteration
    and the loss scale after it."""

    def __init__(self) -> None:
        super().__init__('LOWEST')
        self.before_iter: List[Dict] = []
        self.scales: List[float] = []

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        super().before_train_iter(runner, batch_idx, data_batch)
        self.before_iter.append(params(runner.model))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        self.scales.append(runner.optim_wrapper.loss_scaler.get_scale())


def check_ema_follows_iterates(runner, probe: Probe) -> None:
    """The EMA is float32, finite, was switched in at every epoch end and
    equals the average of the weights seen after every iteration."""
    hook = sema_hook(runner)
    ema_params = dict(hook.ema_model.module.named_parameters())
    assert all(p.dtype == torch.float32 for p in ema_params.values())
    assert all(bool(p.isfinite().all()) for p in ema_params.values())
    assert hook.num_switches == 4
    assert hook.ema_model.num_steps == 1 + len(probe.after_iter)
    for ema, ema_after, model_after in zip(ema_of_iterates(probe),
                                           probe.ema_after_epoch,
                                           probe.after_epoch):
        assert_close(ema_after, ema)
        assert_close(model_after, ema)


def test_amp_fp16_skipped_steps(tmp_path):
    """fp16 AMP with mmengine's AmpOptimWrapper (GradScaler), whose first
    steps overflow (initial scale 2**24) and are skipped by the scaler.

    A skipped step leaves the weights as they were, and its loss is finite,
    so the hook still updates the EMA with those unchanged weights (its
    promise: one update per optimizer-wrapper step whose logged loss is
    finite). The EMA equals the average of the weights seen after every
    iteration, skipped or not, stays finite and is switched in.
    """
    init_scale = 2.**24
    probe = StepProbe()
    runner = cuda_runner(
        tmp_path, [probe],
        optim_wrapper=dict(
            type='AmpOptimWrapper', dtype='float16', optimizer=AMP_SGD,
            loss_scale=dict(init_scale=init_scale, growth_interval=10**6)))
    runner.train()
    assert runner.model.train_dtype == torch.float16  # autocast was on
    scales = [init_scale] + probe.scales
    skipped = [i for i in range(len(probe.scales))
               if scales[i + 1] < scales[i]]
    assert 0 < len(skipped) < len(probe.scales) // 2
    for i in range(len(probe.scales)):
        unchanged = all(
            torch.equal(probe.before_iter[i][k], probe.after_iter[i][k])
            for k in probe.after_iter[i])
        assert unchanged == (i in skipped), i
    # Every iteration updated the EMA (num_steps), skipped steps included.
    check_ema_follows_iterates(runner, probe)


def test_amp_bf16(tmp_path):
    """bf16 autocast with mmengine's AmpOptimWrapper: the EMA keeps the
    weights' dtype (float32), stays finite, follows the weights and is
    switched in at every epoch end."""
    probe = Probe()
    runner = cuda_runner(
        tmp_path, [probe],
        optim_wrapper=dict(type='AmpOptimWrapper', dtype='bfloat16',
                           optimizer=AMP_SGD))
    runner.train()
    assert runner.model.train_dtype == torch.bfloat16  # autocast was on
    check_ema_follows_iterates(runner, probe)


@pytest.mark.parametrize('options', [
    dict(),
    dict(warmup_iters=10, interval=2, update_buffers=True),
], ids=['default', 'warmup-interval-buffers'])
@torch.no_grad()
def test_fused_update_does_not_synchronise(options):
    """``FusedEMA.update_parameters`` of a CUDA model (EMA on the same GPU,
    float32 and float16 tensors) makes no host synchronisation."""
    model = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64),
                          nn.Linear(64, 8)).cuda()
    model[2].half()
    ema = FusedEMA(model, momentum=0.1, **options)
    torch.cuda.set_sync_debug_mode('error')
    with pytest.raises(RuntimeError):
        torch.ones(1, device='cuda').item()  # the mode is on
    for _ in range(6):  # the first call copies, later ones average
        for p in model.parameters():
            p.add_(1)
        ema.update_parameters(model)
    torch.cuda.set_sync_debug_mode(0)
    assert ema.num_steps == 6
    assert {p.dtype for p in ema.module.parameters()} == \
        {torch.float32, torch.float16}


class SyncDebugMode(Hook):
    """Sets torch's CUDA sync debug mode in ``after_train_iter``: put one
    with ``'error'`` before a hook and one with ``'default'`` after it."""

    def __init__(self, mode: str, priority: int) -> None:
        self.mode = mode
        self.priority = priority
        self.calls = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        torch.cuda.set_sync_debug_mode(self.mode)
        self.calls += 1


@pytest.mark.parametrize('nonfinite_check, ema_device', [
    ('loss', None), (None, None), ('loss', 'cpu')])
def test_hook_update_does_not_synchronise(tmp_path, nonfinite_check,
                                          ema_device):
    """SwitchEMAHook's ``after_train_iter`` (the EMA update; the non-finite
    check reads the loss mmengine has already logged) makes no host
    synchronisation, with the EMA on the GPU or on the host (overlapped
    updates): it runs alone between two hooks that turn the sync debug
    mode to ``'error'`` and back."""
    opened = SyncDebugMode('error', priority=51)
    closed = SyncDebugMode('default', priority=53)
    extra = {} if ema_device is None else dict(device=ema_device)
    runner = cuda_runner(
        tmp_path, [opened, closed],
        custom_hooks=sema(priority=52, nonfinite_check=nonfinite_check,
                          **extra))
    window = [
        h for h in runner.hooks if 51 <= get_priority(h.priority) <= 53
    ]
    assert window == [opened, sema_hook(runner), closed]
    runner.train()
    hook = sema_hook(runner)
    assert opened.calls == closed.calls == 32
    assert hook.ema_model.num_steps == 1 + 32
    assert hook.num_switches == 4
    if ema_device == 'cpu':  # every update went through the worker
        assert hook.ema_model._offload.updates_done == 32


def test_runner_host_ema_overlapped_equals_synchronous(tmp_path):
    """SwitchEMAHook(device='cpu', buffers='average') of a model on the GPU,
    overlapped (the default there) and synchronous (``overlap=False``):
    the same weights after every epoch (switches included), the same EMA
    and the same validation. Tolerance 1e-6 for the GPU's kernels; a race
    with the copies moves values by about 1e-2. After training the host
    EMA's ``ema_model.module`` holds copies of the model's buffers that are
    not averaged (``num_batches_tracked``)."""
    runs = []
    for overlap in (None, False):
        probe = Probe()
        runner = cuda_runner(
            tmp_path / str(overlap), [probe],
            custom_hooks=sema(buffers='average', device='cpu',
                              overlap=overlap))
        runner.train()
        hook = sema_hook(runner)
        assert hook.num_switches == 4
        assert (hook.ema_model._offload is None) == (overlap is False)
        ema_buffers = dict(hook.ema_model.module.named_buffers())
        averaged = set(hook.averager.pairs.names)
        copied = [(n, b) for n, b in runner.model.named_buffers()
                  if n not in averaged]
        assert 'backbone.1.num_batches_tracked' in dict(copied)
        for name, buffer in copied:
            assert ema_buffers[name].device.type == 'cpu', name
            assert torch.equal(ema_buffers[name], buffer.cpu()), name
        runs.append(probe)
    for name in ('after_epoch', 'ema_after_epoch', 'seen_in_val'):
        for a, b in zip(getattr(runs[0], name), getattr(runs[1], name)):
            assert_close(on_cuda(a), on_cuda(b), atol=1e-6)


def _one_gpu_rank(cfg, work_dir, *args: str) -> str:
    """``tools/dist_train.sh cfg 1`` on GPU 0 (nccl); its output."""
    from tests.test_tools import TOOLS, free_port, run
    return run(['bash', str(TOOLS / 'dist_train.sh'), str(cfg), '1',
                '--work-dir', str(work_dir), *args], cwd=cfg.parent,
               timeout=300, CUDA_VISIBLE_DEVICES='0',
               PORT=str(free_port())).stdout


@pytest.mark.parametrize('strategy',
                         ['fsdp1_orig', 'fsdp1_flat', 'fsdp2_full'])
def test_sharded_sema_on_cuda(strategy, tmp_path):
    """FSDP1 (both ``use_orig_params``) and FSDP2 on the GPU through
    ``tools/dist_train.sh`` with one nccl rank (its shard is the whole
    model): the sharded EMA on CUDA gives the DDP run's gathered EMA and
    weights after every epoch, and resuming the epoch-1 checkpoint ends
    equal to the uninterrupted run. Tolerance 1e-4: the training
    subprocesses may pick non-deterministic cuDNN kernels (a switch that
    went wrong moves the weights by about 1e-2)."""
    from tests.test_fsdp import EPOCHS, config, full
    overrides = dict(randomness=dict(seed=0, deterministic=False))
    runs = {}
    for name in (strategy, 'ddp'):
        cfg = config(tmp_path / name, name, 'params', overrides=overrides)
        out = _one_gpu_rank(cfg, tmp_path / name / 'w')
        assert 'switch 4 at iteration 12' in out, out[-3000:]
        assert ('sharded model' in out) == (name != 'ddp'), out[-3000:]
        runs[name] = tmp_path / name
    for epoch in range(1, EPOCHS + 1):
        ours, ref = full(runs[strategy], epoch), full(runs['ddp'], epoch)
        # Both trained on the GPU (FSDP2Strategy moves the model there).
        for run in (ours, ref):
            assert all(run[key][n].is_cuda for key in ('model', 'ema')
                       for n in ref['names'])
        for key in ('model', 'ema'):
            assert_close({n: ours[key][n].cpu() for n in ref['names']},
                         {n: ref[key][n].cpu() for n in ref['names']},
                         atol=1e-4)
    resumed = tmp_path / 'resumed'
    cfg = config(resumed, strategy, 'params', overrides=overrides)
    _one_gpu_rank(cfg, resumed / 'w', '--resume',
                  str(runs[strategy] / 'w' / 'epoch_1.pth'))
    a, b = full(runs[strategy], EPOCHS), full(resumed, EPOCHS)
    for key in ('model', 'ema'):
        assert_close({n: a[key][n].cpu() for n in a['names']},
                     {n: b[key][n].cpu() for n in a['names']}, atol=1e-4)
