"""Measure the cost of SEMA's EMA update and switch, side by side.

For the parameter sets of real models (ResNet-50, Mask R-CNN R-50 FPN,
ViT-B/16, built from mmpretrain and mmdet without pretrained weights) this
prints, measured in one process and interleaved round-robin:

* ``update``: one EMA update with SwitchEMAHook's ``FusedEMA``, with mmengine's
  ``ExponentialMovingAverage`` (what ``EMAHook`` runs today), and the
  memory-bandwidth floor: one ``lerp_`` over a single flat buffer of the same
  number of elements;
* ``switch``: copying the EMA into the model with ``FusedEMA``'s fused copy,
  with a per-tensor ``copy_`` loop, and the floor (one flat ``copy_``).

Times are medians over ``--repeat`` runs after ``--warmup`` runs.

``--ema-device`` keeps both EMAs on another device than the model, e.g. on
the host for a model on a GPU (``--device cuda --ema-device cpu``,
SwitchEMAHook's ``device='cpu'``, here with synchronous updates,
``overlap=False``: the cost of one update, not what training sees of it);
the columns stay the same. The floor is
then what any update across devices must do: copy the flat model buffer to
the EMA's device (into pinned memory on the host, waiting for it) and
``lerp_`` there; the switch floor is one flat copy back.

``--train`` measures whole training iterations instead: the demo config
(``configs/demo/resnet_digits_sema.py``, ResNet-18 with 16 base channels on
the digits, 40 iterations of batch 32 per epoch) is trained with no EMA,
with mmengine's ``EMAHook``, with ``SwitchEMAHook`` and with
``SwitchEMAHook(interval=4)``, all with momentum 0.1, in one process: one
Runner per case (no validation, no checkpoints), the cases advanced one
iteration each in turn, so that a change of the machine's load hits all of
them alike. An iteration is timed from fetching its batch to the end of its
``after_train_iter`` hooks, plus the ``after_train_epoch`` hooks (where SEMA
switches) for the last one of an epoch. After one warm-up epoch,
``--train-epochs`` epochs are timed. Each of ``--train-repeat`` rounds builds
new runners; printed are the median iterations per second and each case's
ratio to no EMA (median over rounds, with the range). ``--profile-hooks``
also prints, per case, the milliseconds per iteration and the mean
milliseconds of each call of the EMA-type hook's ``after_train_iter`` (the
update) and ``after_train_epoch`` (SEMA's switch) in the timed epochs.

``--train --device cuda`` measures training on a GPU with torchvision's
ViT-B/16 (batch 64, 224 px, bf16 autocast through mmengine's
``AmpOptimWrapper(dtype='bfloat16')``, AdamW) and synthetic batches made
once on the GPU, each case a real ``Runner`` with an ``IterBasedTrainLoop``
(no validation, no checkpoints; the EMA is never switched while timed):
no EMA, mmengine's ``EMAHook``, ``SwitchEMAHook`` (EMA on the GPU) and
``SwitchEMAHook(device='cpu')`` (EMA on the host, updates overlapped with
training). All runners are built first and warmed up; then
``--train-repeat`` rounds (default 4) run ``--train-iters`` iterations per
case, the cases in turn (reversed every other round). A block is timed
from a settled state to a settled state: the device synchronised and the
EMA's pending host updates joined, so they count. Printed: iterations per
second (median over rounds, range), the ratio to no EMA of the same round
(median, range), and the host time of the EMA-type hook's
``after_train_iter`` (median of the timed calls). It needs torch,
torchvision and mmengine only. ``--quick`` runs the same code with a tiny
ViT on 32 px images, 2 rounds of a few iterations, on any device (the
tests run it on the CPU). The sharded EMA (``shard=True``) needs several
GPUs and is not measured by this single-process benchmark.

Usage::

    python tools/benchmark.py [--models resnet50 mask_rcnn vit_b]
                              [--device cpu] [--ema-device DEVICE]
                              [--repeat 20]
    python tools/benchmark.py --train [--train-repeat 3]
                              [--train-epochs 5] [--threads 1]
                              [--profile-hooks]
    python tools/benchmark.py --train --device cuda [--train-repeat 4]
                              [--train-iters 150] [--train-warmup 20]
    python tools/benchmark.py --train --quick
"""
import argparse
import os.path as osp
import statistics
import time
import uuid
from typing import (
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import torch
from mmengine.model import BaseModel, ExponentialMovingAverage
from mmengine.registry import LOOPS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from torch import nn
from torch.utils.data import DataLoader, Dataset

from sema_mm.ema import FusedEMA

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'resnet_digits_sema.py')
TRAIN_CASES = {
    'no EMA': None,
    'mmengine EMAHook': dict(type='mmengine.EMAHook', momentum=0.1),
    'SwitchEMAHook': dict(type='SwitchEMAHook', momentum=0.1),
    'SwitchEMAHook, interval=4': dict(type='SwitchEMAHook', momentum=0.1,
                                      interval=4),
}


#: Cases of ``--train --device cuda``: the EMA-type hook of each runner.
GPU_TRAIN_CASES = {
    'no EMA': None,
    'mmengine EMAHook': dict(type='EMAHook', momentum=1e-3),
    'SwitchEMAHook': dict(type='SwitchEMAHook', momentum=1e-3),
    "SwitchEMAHook(device='cpu')": dict(type='SwitchEMAHook',
                                        momentum=1e-3, device='cpu'),
}
#: The least ratio to no EMA each case should reach (``--device cuda``).
GPU_TARGETS = {'SwitchEMAHook': 0.99, "SwitchEMAHook(device='cpu')": 0.97}
#: (torchvision model, batch size, image size, classes) of the GPU training
#: benchmark and of its ``--quick`` form.
GPU_SETUP = ('vit_b_16', 64, 224, 1000)
QUICK_SETUP = ('tiny_vit', 8, 32, 10)


def build_model(name: str) -> nn.Module:
    """A real model of the given name, randomly initialised."""
    if name == 'resnet50':
        from mmpretrain.models import ResNet
        return ResNet(depth=50)
    if name == 'vit_b':
        from mmpretrain.models import VisionTransformer
        return VisionTransformer(arch='b', img_size=224, patch_size=16)
    if name == 'mask_rcnn':
        from mmdet.registry import MODELS
        from mmengine.hub import get_config
        from mmengine.registry import init_default_scope
        init_default_scope('mmdet')
        cfg = get_config('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
        cfg.model.backbone.init_cfg = None
        return MODELS.build(cfg.model)
    raise ValueError(f'unknown model {name!r}')


Devices = Union[torch.device, Sequence[torch.device]]


def synchronize(devices: Devices) -> None:
    """Wait for the work queued on every CUDA device of ``devices``."""
    if isinstance(devices, torch.device):
        devices = [devices]
    for device in devices:
        if device.type == 'cuda':
            torch.cuda.synchronize(device)


def timed(fn: Callable[[], None], devices: Devices) -> float:
    """Seconds one call of ``fn`` takes (synchronised on accelerators)."""
    synchronize(devices)
    start = time.perf_counter()
    fn()
    synchronize(devices)
    return time.perf_counter() - start


def measure(cases: Dict[str, Callable[[], None]], devices: Devices,
            warmup: int, repeat: int) -> Dict[str, float]:
    """Median seconds per case, the cases run round-robin; ``devices`` are
    the devices the cases run on."""
    samples: Dict[str, List[float]] = {k: [] for k in cases}
    for i in range(warmup + repeat):
        for name, fn in cases.items():
            t = timed(fn, devices)
            if i >= warmup:
                samples[name].append(t)
    return {k: statistics.median(v) for k, v in samples.items()}


def floor_ops(numel: int, device: torch.device, ema_device: torch.device,
              momentum: float) -> Tuple[Callable[[], None],
                                        Callable[[], None]]:
    """The least an update and a switch can do for ``numel`` weights on
    ``device`` and their EMA on ``ema_device``: one flat buffer each.

    On one device the update is one ``lerp_`` and the switch one ``copy_``.
    Across devices the update first copies the model's buffer into a
    staging buffer on the EMA's device (pinned on the host, then waited
    for), as ``FusedEMA`` does; the switch is one blocking copy back.
    """
    flat_ema = torch.zeros(numel, device=ema_device)
    flat_src = torch.randn(numel, device=device)

    def switch() -> None:
        flat_src.copy_(flat_ema)

    if flat_ema.device == flat_src.device:
        return lambda: flat_ema.lerp_(flat_src, momentum), switch
    to_host = flat_ema.device.type == 'cpu' and flat_src.device.type == 'cuda'
    staged = torch.empty(numel, device=ema_device, pin_memory=to_host)

    def update() -> None:
        staged.copy_(flat_src, non_blocking=True)
        if to_host:
            torch.cuda.current_stream(flat_src.device).synchronize()
        flat_ema.lerp_(staged, momentum)

    return update, switch


def bench_model(name: str, device: torch.device, warmup: int, repeat: int,
                ema_device: Optional[torch.device] = None) -> List[str]:
    """Markdown table rows for one model on ``device``, both EMAs on
    ``ema_device`` (default: ``device``)."""
    ema_device = device if ema_device is None else ema_device
    model = build_model(name).to(device)
    params = [p for p in model.parameters() if p.is_floating_point()]
    numel = sum(p.numel() for p in params)
    # Synchronous updates: each timed call does the whole update.
    fused = FusedEMA(model, momentum=1e-3, device=ema_device, overlap=False)
    fused.seed(model)
    mme = ExponentialMovingAverage(model, momentum=1e-3, device=ema_device)
    mme.update_parameters(model)  # its first call only copies
    floor_update, floor_switch = floor_ops(numel, device, ema_device, 1e-3)
    devices = [device, ema_device]
    pairs = fused.pairs_for(model)
    ema_params = list(fused.module.parameters())

    def loop_copy() -> None:
        with torch.no_grad():
            for p, q in zip(params, ema_params):
                p.copy_(q)

    update = measure(
        dict(fused=lambda: fused.update_parameters(model),
             mmengine=lambda: mme.update_parameters(model),
             floor=floor_update), devices, warmup, repeat)
    switch = measure(
        dict(fused=pairs.copy_to_source, loop=loop_copy, floor=floor_switch),
        devices, warmup, repeat)
    ms = {k: v * 1e3 for k, v in update.items()}
    sw = {k: v * 1e3 for k, v in switch.items()}
    return [
        f'| {name} | {numel / 1e6:.1f}M | {len(params)} | update | '
        f"{ms['fused']:.2f} | {ms['mmengine']:.2f} | {ms['floor']:.2f} | "
        f"{ms['fused'] / ms['floor']:.2f}x | "
        f"{ms['mmengine'] / ms['fused']:.2f}x | "
        f"{ms['mmengine'] / ms['floor']:.2f}x |",
        f'| {name} | | | switch | {sw["fused"]:.2f} | {sw["loop"]:.2f} '
        f'(per-tensor copy) | {sw["floor"]:.2f} | '
        f'{sw["fused"] / sw["floor"]:.2f}x | '
        f'{sw["loop"] / sw["fused"]:.2f}x | '
        f'{sw["loop"] / sw["floor"]:.2f}x |',
    ]


class ReadyToStep(Exception):
    """Raised by :class:`SteppedEpochLoop` once training is set up."""


@LOOPS.register_module()
class SteppedEpochLoop(EpochBasedTrainLoop):
    """An epoch-based loop whose ``run`` stops right after
    ``before_train``: ``Runner.train()`` then has built and initialised
    everything (optimizer, schedulers, hooks' ``before_run`` and
    ``before_train``), and :func:`steps` drives the epochs."""

    def run(self):
        self.runner.call_hook('before_train')
        raise ReadyToStep()


def steps(runner, epochs: int) -> Iterator[Tuple[int, float]]:
    """Train ``epochs`` epochs as ``EpochBasedTrainLoop.run_epoch`` does,
    yielding ``(epoch, seconds)`` after every iteration. The seconds cover
    fetching the batch, the iteration with its hooks and, for the last
    iteration of an epoch, the epoch's end hooks (where SEMA switches)."""
    loop = runner.train_loop
    for epoch in range(epochs):
        runner.call_hook('before_train_epoch')
        runner.model.train()
        batches = iter(loop.dataloader)
        n = len(loop.dataloader)
        for idx in range(n):
            start = time.perf_counter()
            loop.run_iter(idx, next(batches))
            if idx == n - 1:
                runner.call_hook('after_train_epoch')
                loop._epoch += 1
            yield epoch, time.perf_counter() - start


def build_train_runner(hook: Optional[dict], epochs: int, data_root: str,
                       seed: int):
    """A Runner of the demo config with ``hook``, set up and ready for
    :func:`steps` (no validation, no checkpoints)."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from sema_mm.comparison.variants import set_data_root, set_epochs

    cfg = Config.fromfile(DEMO_CONFIG)
    set_data_root(cfg, data_root)
    set_epochs(cfg, epochs)
    cfg.train_cfg = dict(type='SteppedEpochLoop', max_epochs=epochs)
    cfg.custom_hooks = [] if hook is None else [dict(hook)]
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = None
    cfg.log_level = 'WARNING'
    cfg.work_dir = osp.join(REPO, 'work_dirs', 'benchmark_train')
    cfg.experiment_name = f'bench_{uuid.uuid4().hex[:8]}'
    cfg.randomness = dict(seed=seed, deterministic=False)
    runner = Runner.from_cfg(cfg)
    try:
        runner.train()
    except ReadyToStep:
        pass
    return runner


def time_ema_hook(runner, calls: Dict[str, List[float]],
                  timed: Callable[[object], bool] = lambda run: run.epoch >= 1
                  ) -> None:
    """Append the seconds of each call of the runner's EMA-type hook's
    ``after_train_iter`` (the update) and ``after_train_epoch`` (SEMA's
    switch) for which ``timed(runner)`` holds (default: after the first,
    warm-up, epoch) to ``calls[method name]``."""
    for hook in runner.hooks:
        if 'EMAHook' not in type(hook).__name__:
            continue
        for name in ('after_train_iter', 'after_train_epoch'):

            def call(run, *args, _method=getattr(hook, name), _name=name,
                     **kwargs):
                start = time.perf_counter()
                _method(run, *args, **kwargs)
                if timed(run):
                    calls[_name].append(time.perf_counter() - start)

            setattr(hook, name, call)


def bench_training(repeat: int, epochs: int,
                   cases: Optional[Sequence[str]] = None,
                   profile: bool = False) -> Tuple[List[str], List[str]]:
    """Markdown rows: training iterations per second of the demo config per
    case, the cases advanced one iteration each in turn; with ``profile``,
    also rows of the milliseconds the EMA-type hook's methods take."""
    from sema_mm.datasets.digits import make_digits

    data = make_digits(osp.join(REPO, 'data', 'digits'))
    cases = list(cases or TRAIN_CASES)
    rates: Dict[str, List[float]] = {c: [] for c in cases}
    calls: Dict[str, Dict[str, List[float]]] = {
        c: {'after_train_iter': [], 'after_train_epoch': []}
        for c in cases
    }
    for r in range(repeat):
        runners = {
            c: build_train_runner(TRAIN_CASES[c], epochs + 1,
                                  data['root'], seed=r)
            for c in cases
        }
        if profile:
            for c in cases:
                time_ema_hook(runners[c], calls[c])
        gens = {c: steps(runners[c], epochs + 1) for c in cases}
        total = {c: 0.0 for c in cases}
        count = {c: 0 for c in cases}
        order = list(cases)
        done = False
        while not done:
            for c in order:
                try:
                    epoch, seconds = next(gens[c])
                except StopIteration:
                    done = True
                    continue
                if epoch >= 1:  # the first epoch is warm-up
                    total[c] += seconds
                    count[c] += 1
            order.reverse()  # no case always goes first
        for c in cases:
            rates[c].append(count[c] / total[c])
        del runners, gens
        print(f'round {r + 1}/{repeat}: ' + ', '.join(
            f'{c} {rates[c][-1]:.2f} it/s' for c in cases), flush=True)
    base = rates[cases[0]]
    rows = []
    for case in cases:
        ratios = [a / b for a, b in zip(rates[case], base)]
        rows.append(
            f'| {case} | {statistics.median(rates[case]):.2f} | '
            f'{min(rates[case]):.2f} - {max(rates[case]):.2f} | '
            f'{statistics.median(ratios):.3f}x | '
            f'{min(ratios):.3f} - {max(ratios):.3f} |')
    profile_rows = []
    for case in cases if profile else []:
        per_call = {
            k: f'{statistics.mean(v) * 1e3:.3f}' if v else '-'
            for k, v in calls[case].items()
        }
        profile_rows.append(
            f'| {case} | {1e3 / statistics.median(rates[case]):.2f} | '
            f"{per_call['after_train_iter']} | "
            f"{per_call['after_train_epoch']} |")
    return rows, profile_rows


class TorchvisionClassifier(BaseModel):
    """A torchvision classification network as an mmengine model (the
    loss: cross-entropy of the logits in float32)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, inputs: torch.Tensor, labels=None, mode: str = 'loss'):
        logits = self.net(inputs)
        if mode == 'loss':
            return dict(
                loss=nn.functional.cross_entropy(logits.float(), labels))
        return logits


def torchvision_net(arch: str, image_size: int,
                    num_classes: int) -> nn.Module:
    """torchvision's ``arch`` (random weights), or for ``'tiny_vit'`` a
    two-layer ViT of width 32 with 8-pixel patches."""
    import torchvision
    if arch == 'tiny_vit':
        return torchvision.models.VisionTransformer(
            image_size=image_size, patch_size=8, num_layers=2, num_heads=2,
            hidden_dim=32, mlp_dim=64, num_classes=num_classes)
    return torchvision.models.get_model(arch, weights=None,
                                        num_classes=num_classes)


class ResidentBatches(Dataset):
    """``count`` synthetic batches made once on ``device`` (normal images,
    uniform labels); item ``i`` is batch ``i % count``, so loading one
    moves and collates nothing (use a ``DataLoader`` with
    ``batch_size=None``)."""

    def __init__(self, batch: int, image_size: int, num_classes: int,
                 device: torch.device, count: int = 4) -> None:
        g = torch.Generator(device=device).manual_seed(0)
        self.batches = [
            dict(inputs=torch.randn(batch, 3, image_size, image_size,
                                    generator=g, device=device),
                 labels=torch.randint(num_classes, (batch, ), generator=g,
                                      device=device)) for _ in range(count)
        ]

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, index: int) -> dict:
        return self.batches[index % len(self.batches)]


@LOOPS.register_module()
class SteppedIterLoop(IterBasedTrainLoop):
    """An iteration-based loop whose ``run`` stops right after
    ``before_train`` and ``before_train_epoch``; :func:`run_iters` then
    drives it."""

    def run(self):
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        raise ReadyToStep()


def run_iters(runner, n: int) -> None:
    """``n`` iterations as ``IterBasedTrainLoop.run`` runs them."""
    loop = runner.train_loop
    for _ in range(n):
        runner.model.train()
        loop.run_iter(next(loop.dataloader_iterator))


def settle(runner) -> None:
    """Wait for the runner's queued GPU work and for its EMA's pending
    host updates."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    for hook in runner.hooks:
        averager = getattr(hook, 'averager', None)
        if averager is not None:
            averager.join()


def build_gpu_train_runner(hook: Optional[dict], setup: Tuple, max_iters: int,
                           work_dir: str):
    """A Runner training ``setup`` (see :data:`GPU_SETUP`) on mmengine's
    device with ``hook``, set up and ready for :func:`run_iters`."""
    from mmengine.device import get_device
    from mmengine.runner import Runner
    arch, batch, image_size, num_classes = setup
    device = torch.device(get_device())
    optimizer = dict(type='AdamW', lr=1e-4, weight_decay=0.05)
    optim_wrapper = (dict(type='AmpOptimWrapper', dtype='bfloat16',
                          optimizer=optimizer)
                     if device.type == 'cuda' else dict(optimizer=optimizer))
    if hook is not None and hook['type'] == 'SwitchEMAHook':
        # Never switched while timed: the first switch would follow the
        # last iteration.
        hook = dict(hook, switch_by_epoch=False, switch_interval=max_iters)
    loader = DataLoader(
        ResidentBatches(batch, image_size, num_classes, device),
        batch_size=None)
    runner = Runner(
        model=TorchvisionClassifier(
            torchvision_net(arch, image_size, num_classes)),
        work_dir=work_dir,
        experiment_name=f'bench_{uuid.uuid4().hex[:8]}',
        train_dataloader=loader,
        train_cfg=dict(type='SteppedIterLoop', max_iters=max_iters),
        optim_wrapper=optim_wrapper,
        default_hooks=dict(checkpoint=None, sampler_seed=None,
                           logger=dict(type='LoggerHook', interval=10**6)),
        custom_hooks=[] if hook is None else [dict(hook)],
        env_cfg=dict(cudnn_benchmark=device.type == 'cuda'),
        randomness=dict(seed=0),
        log_level='ERROR',
        default_scope='mmengine')
    try:
        runner.train()
    except ReadyToStep:
        pass
    return runner


def bench_gpu_training(rounds: int, iters: int, warmup: int,
                       quick: bool = False) -> Tuple[List[str], dict]:
    """Markdown rows of the GPU training benchmark (see the module
    docstring) and the measurements: ``{'rates': {case: [it/s per
    round]}, 'ratios': {case: [...]}, 'host_ms': {case: [ms per timed
    after_train_iter call]}}``."""
    setup = QUICK_SETUP if quick else GPU_SETUP
    cases = list(GPU_TRAIN_CASES)
    max_iters = warmup + rounds * iters + 1
    work_dir = osp.join(REPO, 'work_dirs', 'benchmark_gpu_train')
    timing = dict(on=False)
    calls = {c: {'after_train_iter': [], 'after_train_epoch': []}
             for c in cases}
    runners = {}
    for case in cases:
        runners[case] = build_gpu_train_runner(GPU_TRAIN_CASES[case], setup,
                                               max_iters, work_dir)
        time_ema_hook(runners[case], calls[case],
                      timed=lambda run: timing['on'])
    for case in cases:
        run_iters(runners[case], warmup)
        settle(runners[case])
    rates: Dict[str, List[float]] = {c: [] for c in cases}
    for r in range(rounds):
        timing['on'] = True
        for case in (cases if r % 2 == 0 else cases[::-1]):
            runner = runners[case]
            settle(runner)
            start = time.perf_counter()
            run_iters(runner, iters)
            settle(runner)
            rates[case].append(iters / (time.perf_counter() - start))
        timing['on'] = False
        print(f'round {r + 1}/{rounds}: ' + ', '.join(
            f'{c} {rates[c][-1]:.2f} it/s' for c in cases), flush=True)
    for runner in runners.values():
        runner.call_hook('after_train')  # stops a host EMA's worker
    base = rates[cases[0]]
    ratios = {c: [a / b for a, b in zip(rates[c], base)] for c in cases}
    host_ms = {c: [t * 1e3 for t in calls[c]['after_train_iter']]
               for c in cases}
    rows = []
    for case in cases:
        target = GPU_TARGETS.get(case)
        verdict = '' if quick or target is None else (
            f'>= {target}x: ' +
            ('met' if statistics.median(ratios[case]) >= target else
             'NOT met'))
        rows.append(
            f'| {case} | {statistics.median(rates[case]):.2f} | '
            f'{min(rates[case]):.2f} - {max(rates[case]):.2f} | '
            f'{statistics.median(ratios[case]):.3f}x | '
            f'{min(ratios[case]):.3f} - {max(ratios[case]):.3f} | '
            + (f'{statistics.median(host_ms[case]):.3f}'
               if host_ms[case] else '-') + f' | {verdict} |')
    return rows, dict(rates=rates, ratios=ratios, host_ms=host_ms)


def print_gpu_training(args) -> None:
    """``--train`` on a GPU, or ``--quick``: print the setup and the
    table."""
    from mmengine.device import get_device
    arch, batch, image_size, _ = QUICK_SETUP if args.quick else GPU_SETUP
    rounds = args.train_repeat or (2 if args.quick else 4)
    iters = args.train_iters or (3 if args.quick else 150)
    warmup = args.train_warmup if args.train_warmup is not None else (
        2 if args.quick else 20)
    device = get_device()
    name = (torch.cuda.get_device_name()
            if device == 'cuda' else 'CPU')
    print(f'{arch}, batch {batch}, {image_size} px, on {device} ({name}), '
          f'torch {torch.__version__}, CPU threads {torch.get_num_threads()}'
          f'{", bf16 autocast" if device == "cuda" else ""}; {rounds} rounds '
          f'x {iters} iterations per case after {warmup} warm-up '
          'iterations, the cases in turn', flush=True)
    rows, _ = bench_gpu_training(rounds, iters, warmup, quick=args.quick)
    print('| case | it/s (median) | it/s (range) | vs no EMA (median) | '
          'vs no EMA (range) | EMA hook after_train_iter, host ms '
          '(median) | target |')
    print('|---|---|---|---|---|---|---|')
    for row in rows:
        print(row)
    print("| SwitchEMAHook(shard=True) | needs several GPUs (DDP): not "
          'measured by this single-process benchmark | | | | | |')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+',
                        default=['resnet50', 'mask_rcnn', 'vit_b'])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--ema-device', default=None,
                        help='keep the EMAs on this device, e.g. cpu with '
                        '--device cuda (default: --device)')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeat', type=int, default=20)
    parser.add_argument('--train', action='store_true',
                        help='measure training iterations per second of '
                        'the demo config instead')
    parser.add_argument('--train-repeat', type=int, default=None,
                        help='rounds of --train (default 3, each with new '
                        'runners; --device cuda: 4, --quick: 2)')
    parser.add_argument('--train-epochs', type=int, default=5,
                        help='timed epochs per round of --train (after one '
                        'warm-up epoch)')
    parser.add_argument('--profile-hooks', action='store_true',
                        help='with --train: also time the EMA-type hook\'s '
                        'after_train_iter and after_train_epoch calls')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch\'s)')
    parser.add_argument('--quick', action='store_true',
                        help='with --train: the GPU training benchmark with '
                        'a tiny ViT, on any device')
    parser.add_argument('--train-iters', type=int, default=None,
                        help='with --train --device cuda: iterations per '
                        'case and round (default 150; --quick 3)')
    parser.add_argument('--train-warmup', type=int, default=None,
                        help='with --train --device cuda: warm-up '
                        'iterations per case (default 20; --quick 2)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.train and (args.quick or args.device.startswith('cuda')):
        if not args.quick and not torch.cuda.is_available():
            parser.error('--train --device cuda needs a CUDA device')
        print_gpu_training(args)
        return
    if args.train:
        args.train_repeat = args.train_repeat or 3
        if args.ema_device is not None:
            parser.error('--ema-device applies to the update and switch '
                         'table, not to --train')
        if args.train_epochs < 1:
            parser.error('--train-epochs must be >= 1')
        print(f'demo config training, torch {torch.__version__}, threads: '
              f'{torch.get_num_threads()}, {args.train_repeat} rounds x '
              f'{args.train_epochs} timed epochs of 40 iterations per case, '
              'the cases one iteration each in turn')
        rows, profile_rows = bench_training(args.train_repeat,
                                            args.train_epochs,
                                            profile=args.profile_hooks)
        print('| case | it/s (median) | it/s (range) | vs no EMA (median) '
              '| vs no EMA (range) |')
        print('|---|---|---|---|---|')
        for row in rows:
            print(row)
        if profile_rows:
            print('\n| case | ms / iteration (median) | EMA hook '
                  'after_train_iter, ms / call (mean) | after_train_epoch '
                  '(switch), ms / call (mean) |')
            print('|---|---|---|---|')
            for row in profile_rows:
                print(row)
        return
    device = torch.device(args.device)
    ema_device = torch.device(args.ema_device or args.device)
    print(f'device: {device}, EMA on: {ema_device}, '
          f'torch {torch.__version__}, threads: {torch.get_num_threads()}')
    print('| model | params | tensors | op | SwitchEMAHook (ms) | '
          'mmengine (ms) | floor (ms) | vs floor | speed-up vs mmengine | '
          'mmengine vs floor (the most any speed-up can be) |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for name in args.models:
        for row in bench_model(name, device, args.warmup, args.repeat,
                               ema_device):
            print(row, flush=True)


if __name__ == '__main__':
    main()
