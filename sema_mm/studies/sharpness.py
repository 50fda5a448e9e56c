"""Sharpness of trained weights, measured on a fixed set of training batches.

The objective is the mean, over a fixed list of batches, of the model's
total training loss (``parse_losses`` of ``mode='loss'``), as a function of
the model's trainable parameters ``w`` (those with ``requires_grad``; the
normalisation statistics and other buffers are held fixed). Three numbers
describe how sharp it is around ``w``:

* **largest Hessian eigenvalue** ``lambda_max``: power iteration on
  Hessian-vector products (double backward), from a seeded Gaussian start,
  until the Rayleigh quotient changes by less than ``tol`` (relative) or
  after ``iters`` products. Power iteration finds the eigenvalue of largest
  magnitude; at a trained minimum that is the largest (positive) one, and a
  negative value says that the weights are not at a minimum of the
  objective.
* **epsilon-sharpness**: the largest increase of the loss found within the
  l2 ball of radius ``rho = eps * ||w||`` around ``w``, by projected
  normalised gradient ascent as in SAM (Foret et al., 2021): the first step
  is SAM's ``delta = rho * g / ||g||`` (from a seeded random direction of
  norm ``rho`` when the gradient is 0), each further step moves ``delta`` by
  ``rho`` along the normalised gradient at ``w + delta`` and projects it
  back onto the ball. The increase is the largest over the points visited,
  so it is a lower bound of the true maximum that grows with ``steps``.
  This is the raw increase ``max L(w + delta) - L(w)``, not Keskar et al.'s
  normalised percentage.
* **Hessian trace** (optional): Hutchinson's estimator, the mean of
  ``v^T H v`` over ``samples`` seeded Rademacher vectors, with its standard
  error.

The functions here take an :class:`Objective` (batch losses as a function of
parameters) and need only torch. :func:`mmengine_objective` builds one from
an mmengine model: eval mode (batch normalisation uses its running
statistics and is not updated, dropout is off), the batches pre-processed
once with ``training=False`` (no batch augmentation such as mixup), and
torch's random state reset to ``seed + batch index`` around every batch's
loss, so a loss that draws random numbers (e.g. masking) is the same
function at every evaluation. :func:`fixed_train_batches` reads the
batches: the config's *training* dataset with its *test* pipeline (no
random augmentation; for classifiers the test pipeline's resize and crop),
a seeded shuffle (the first ``num_batches`` batches of
``DefaultSampler(shuffle=True, seed=seed)``), the training batch size. (A
training dataset without a ``pipeline``, e.g. tensors, is read as it is.)

Models this cannot measure fail before any work is done, with what to do:
models that change their own state in ``loss()`` (momentum teachers that
update themselves, queues: MoCo, BYOL and the like), which would change
while being measured, and, for the Hessian measures, models whose loss
cannot be differentiated twice (mmcv's ``RoIAlign``, used by two-stage
detectors, is ``once_differentiable``); epsilon-sharpness needs first
derivatives only.
"""
from __future__ import annotations

import copy
import glob
import math
import os.path as osp
import re
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

BatchLoss = Callable[[int], Tensor]


class SharpnessUnsupported(RuntimeError):
    """The model cannot be measured as asked; the message says why."""


def _dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def _norm(a: Sequence[Tensor]) -> float:
    return math.sqrt(sum(float((x.detach().double()**2).sum()) for x in a))


class Objective:
    """The mean of ``batch_loss(i)`` over ``i < num_batches`` as a function
    of ``params``, with its gradient and Hessian-vector products.

    Args:
        batch_loss (callable): ``i`` -> the (differentiable) loss of batch
            ``i`` at the current values of ``params``.
        num_batches (int): Number of batches.
        params (Sequence[Tensor]): The parameters it is a function of
            (changed in place by :meth:`shift`, restored by the measures).
        double_backward_hint (str): Added to the error raised when the loss
            cannot be differentiated twice.
    """

    def __init__(self, batch_loss: BatchLoss, num_batches: int,
                 params: Sequence[Tensor],
                 double_backward_hint: str = '') -> None:
        if num_batches < 1:
            raise ValueError(f'num_batches must be >= 1, got {num_batches}')
        self.batch_loss = batch_loss
        self.num_batches = num_batches
        self.params = list(params)
        self.double_backward_hint = double_backward_hint
        self._checked = False

    def _grads(self, loss: Tensor, create_graph: bool) -> List[Tensor]:
        grads = torch.autograd.grad(loss, self.params,
                                    create_graph=create_graph,
                                    allow_unused=True)
        return [torch.zeros_like(p) if g is None else g
                for p, g in zip(self.params, grads)]

    def loss(self) -> float:
        """The objective's value."""
        with torch.no_grad():
            return sum(float(self.batch_loss(i).detach())
                       for i in range(self.num_batches)) / self.num_batches

    def loss_and_grad(self) -> tuple:
        """The value and the gradient (a list like ``params``)."""
        total, grad = 0.0, [torch.zeros_like(p) for p in self.params]
        for i in range(self.num_batches):
            loss = self.batch_loss(i)
            total += float(loss.detach())
            for acc, g in zip(grad, self._grads(loss, False)):
                acc.add_(g, alpha=1.0 / self.num_batches)
        return total / self.num_batches, grad

    def _refuse_once_differentiable(self, grads: Sequence[Tensor]) -> None:
        """Fail if the graph of ``grads`` passes through a backward marked
        ``once_differentiable`` (mmcv's ops): torch would silently treat its
        second derivative as 0 instead of raising."""
        seen, stack = set(), [g.grad_fn for g in grads]
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            if type(node).__name__ in ('DelayedError', 'Error'):
                raise SharpnessUnsupported(
                    'the loss cannot be differentiated twice, which the '
                    'Hessian eigenvalue and trace need (Hessian-vector '
                    'products): its backward passes through an operation '
                    'marked once_differentiable, whose second derivative '
                    'torch would silently take as 0. '
                    f'{self.double_backward_hint}'.strip())
            stack.extend(f for f, _ in node.next_functions)
        self._checked = True

    def hvp(self, vec: Sequence[Tensor]) -> List[Tensor]:
        """The Hessian-vector product ``H vec``.

        Raises:
            SharpnessUnsupported: The loss cannot be differentiated twice
                (checked on the first product).
        """
        out = [torch.zeros_like(p) for p in self.params]
        for i in range(self.num_batches):
            try:
                grads = self._grads(self.batch_loss(i), True)
                if not self._checked:
                    self._refuse_once_differentiable(grads)
                prod = _dot(grads, vec)
                if not prod.requires_grad:  # a loss linear in params
                    continue
                hv = self._grads(prod, False)
            except RuntimeError as e:
                raise SharpnessUnsupported(
                    'the loss cannot be differentiated twice, which the '
                    'Hessian eigenvalue and trace need (Hessian-vector '
                    f'products): {e}. {self.double_backward_hint}'.strip()
                ) from e
            for acc, h in zip(out, hv):
                acc.add_(h.detach(), alpha=1.0 / self.num_batches)
        return out

    def shift(self, delta: Optional[Sequence[Tensor]],
              origin: Sequence[Tensor]) -> None:
        """Set the parameters to ``origin + delta`` (``origin`` if None)."""
        with torch.no_grad():
            for p, o, d in zip(self.params, origin,
                               delta or [None] * len(self.params)):
                p.copy_(o if d is None else o + d)


def _random_like(params: Sequence[Tensor], generator: torch.Generator,
                 rademacher: bool = False) -> List[Tensor]:
    out = []
    for p in params:
        if rademacher:
            v = torch.randint(0, 2, p.shape, generator=generator,
                              dtype=torch.int8).to(p.dtype) * 2 - 1
        else:
            v = torch.randn(p.shape, generator=generator, dtype=p.dtype)
        out.append(v.to(p.device))
    return out


def top_hessian_eigenvalue(objective: Objective, iters: int = 20,
                           tol: float = 1e-3, seed: int = 0) -> dict:
    """The Hessian eigenvalue of largest magnitude, by power iteration.

    Args:
        objective (Objective): The function.
        iters (int): Hessian-vector products at most.
        tol (float): Stop when the estimate changes by less than this,
            relative to its size.
        seed (int): Seed of the Gaussian start vector.

    Returns:
        dict: ``value`` (the Rayleigh quotient ``v^T H v`` of the last unit
        vector), ``iterations`` and ``converged``.
    """
    g = torch.Generator().manual_seed(seed)
    v = _random_like(objective.params, g)
    norm = _norm(v)
    v = [x / norm for x in v]
    value, converged, it = math.nan, False, 0
    for it in range(1, iters + 1):
        hv = objective.hvp(v)
        new = float(_dot(hv, v))
        norm = _norm(hv)
        if norm == 0.0:
            value, converged = 0.0, True
            break
        v = [x / norm for x in hv]
        if not math.isnan(value) and abs(new - value) <= tol * abs(new):
            value, converged = new, True
            break
        value = new
    return dict(value=value, iterations=it, converged=converged)


def hessian_trace(objective: Objective, samples: int = 10,
                  seed: int = 0) -> dict:
    """Hutchinson's estimate of the Hessian trace.

    Returns:
        dict: ``value`` (mean of ``v^T H v`` over ``samples`` Rademacher
        vectors), ``stderr`` (its standard error; NaN for one sample) and
        ``samples``.
    """
    if samples < 1:
        raise ValueError(f'samples must be >= 1, got {samples}')
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(samples):
        v = _random_like(objective.params, g, rademacher=True)
        values.append(float(_dot(objective.hvp(v), v)))
    mean = sum(values) / samples
    stderr = math.nan
    if samples > 1:
        var = sum((x - mean)**2 for x in values) / (samples - 1)
        stderr = math.sqrt(var / samples)
    return dict(value=mean, stderr=stderr, samples=samples)


def epsilon_sharpness(objective: Objective, eps: float = 1e-3,
                      steps: int = 5, seed: int = 0) -> dict:
    """The largest loss increase found within the l2 ball of radius
    ``eps * ||w||`` (see the module docstring).

    Args:
        objective (Objective): The function.
        eps (float): Radius relative to the norm of the parameters.
        steps (int): Ascent steps (gradient evaluations).
        seed (int): Seed of the random start, used when the gradient at
            ``w`` is 0.

    Returns:
        dict: ``value`` (the increase, >= 0), ``loss`` (at ``w``),
        ``radius`` (``rho``), ``weight_norm`` and ``steps``. The parameters
        are restored.
    """
    if eps <= 0 or steps < 1:
        raise ValueError(f'eps must be > 0 and steps >= 1, got {eps}, '
                         f'{steps}')
    origin = [p.detach().clone() for p in objective.params]
    weight_norm = _norm(origin)
    rho = eps * weight_norm
    try:
        base, grad = objective.loss_and_grad()
        norm = _norm(grad)
        if norm == 0.0:
            g = torch.Generator().manual_seed(seed)
            grad = _random_like(objective.params, g)
            norm = _norm(grad)
        delta = [rho * x / norm for x in grad]
        best = base
        for step in range(steps):
            objective.shift(delta, origin)
            if step == steps - 1:
                best = max(best, objective.loss())
                break
            loss, grad = objective.loss_and_grad()
            best = max(best, loss)
            norm = _norm(grad)
            if norm == 0.0:
                break
            delta = [d + rho * x / norm for d, x in zip(delta, grad)]
            length = _norm(delta)
            if length > rho:
                delta = [d * (rho / length) for d in delta]
    finally:
        objective.shift(None, origin)
    return dict(value=best - base, loss=base, radius=rho,
                weight_norm=weight_norm, steps=steps)


# ------------------------------------------------------- mmengine models
@dataclass
class SharpnessOptions:
    """What to measure and on which batches.

    Attributes:
        batches (int): Training batches the loss is averaged over.
        batch_size (int, optional): Their size (default: the config's
            training batch size).
        power_iters (int): Hessian-vector products of the power iteration
            at most; 0 skips ``lambda_max``.
        tol (float): Relative tolerance of the power iteration.
        eps (float): Radius of epsilon-sharpness relative to ``||w||``; 0
            skips it.
        ascent_steps (int): Ascent steps of epsilon-sharpness.
        trace_samples (int): Hutchinson samples; 0 (default) skips the
            trace.
        seed (int): Seed of the batches, the start vectors and the losses'
            random numbers.
        device (str, optional): Where to compute (default: CUDA if
            available, else the CPU).
    """

    batches: int = 4
    batch_size: Optional[int] = None
    power_iters: int = 20
    tol: float = 1e-3
    eps: float = 1e-3
    ascent_steps: int = 5
    trace_samples: int = 0
    seed: int = 0
    device: Optional[str] = None

    def key(self) -> dict:
        """What the numbers depend on (``device`` aside)."""
        out = asdict(self)
        out.pop('device')
        return out


def _pipelines(dataset: dict) -> List[dict]:
    """The dataset configs holding a ``pipeline`` in ``dataset`` and the
    datasets it wraps (``dataset``, ``datasets``)."""
    if 'pipeline' in dataset:
        return [dataset]
    inner = ([dataset['dataset']] if 'dataset' in dataset else []) + list(
        dataset.get('datasets', []))
    return [d for i in inner for d in _pipelines(i)]


def _use_test_pipeline(cfg, loader: dict) -> None:
    """Give the training datasets of ``loader`` the test (else the
    validation) pipeline of ``cfg``; datasets without pipelines are left
    as they are."""
    train = _pipelines(loader['dataset'])
    if not train:
        return
    for name in ('test_dataloader', 'val_dataloader'):
        found = _pipelines((cfg.get(name) or {}).get('dataset') or {})
        if found:
            for dataset in train:
                dataset['pipeline'] = copy.deepcopy(found[0]['pipeline'])
            return
    raise KeyError('the config has no test_dataloader or val_dataloader '
                   'whose pipeline could read the training images without '
                   'random augmentation')


def fixed_train_batches(cfg, num_batches: int,
                        batch_size: Optional[int] = None,
                        seed: int = 0) -> list:
    """The first ``num_batches`` batches of the config's training set read
    with its test pipeline, in a seeded shuffled order (see the module
    docstring). The config's default scope must be set."""
    from mmengine.runner import Runner

    loader = copy.deepcopy(cfg.get('train_dataloader'))
    if not loader:
        raise KeyError('the config has no train_dataloader')
    loader = loader.to_dict() if hasattr(loader, 'to_dict') else dict(loader)
    _use_test_pipeline(cfg, loader)
    loader['sampler'] = dict(type='DefaultSampler', shuffle=True, seed=seed)
    loader.update(num_workers=0, persistent_workers=False, pin_memory=False)
    if batch_size is not None:
        loader['batch_size'] = batch_size
    data = []
    for batch in Runner.build_dataloader(loader, seed=seed):
        data.append(batch)
        if len(data) >= num_batches:
            break
    return data


def check_stateless_loss(model: nn.Module, batch_loss: BatchLoss) -> None:
    """Fail if the model has momentum teachers, or if one ``loss()`` call
    changes any of its parameters or buffers."""
    from ..ema.teachers import find_momentum_teachers

    teachers = find_momentum_teachers(model)
    what = ('sharpness is measured on a fixed function of the weights; '
            f'{type(model).__name__} changes its own state in loss()')
    if teachers:
        raise SharpnessUnsupported(
            f'{what}: it holds momentum teachers ({", ".join(teachers)}) '
            'that update themselves at every loss. Measure its backbone in '
            'a model without them (e.g. a linear-probe or fine-tuning '
            'config that loads the checkpoint).')
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        batch_loss(0)
    after = model.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    if changed:
        with torch.no_grad():
            for k in changed:
                after[k].copy_(before[k])
        raise SharpnessUnsupported(
            f'{what}: one loss changed {", ".join(changed[:5])}'
            f'{" ..." if len(changed) > 5 else ""} (e.g. a queue or a '
            'momentum update).')


def mmengine_objective(model: nn.Module, batches: Sequence,
                       seed: int = 0) -> Objective:
    """The mean training loss of an mmengine ``BaseModel`` over fixed
    ``batches`` (eval mode, pre-processed once, random state reset per
    batch), checked with :func:`check_stateless_loss`.

    The model is left in eval mode.
    """
    model.eval()
    with torch.no_grad():
        data = [model.data_preprocessor(b, False) for b in batches]
    devices = [torch.cuda.current_device()] if any(
        p.is_cuda for p in model.parameters()) else []

    def batch_loss(i: int) -> Tensor:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed + i)
            losses = model(**data[i], mode='loss')
        loss, _ = model.parse_losses(losses)
        return loss

    check_stateless_loss(model, batch_loss)
    params = [p for p in model.parameters() if p.requires_grad]
    return Objective(
        batch_loss, len(data), params,
        double_backward_hint=(
            f'{type(model).__name__} uses an operation without a second '
            'derivative (mmcv\'s RoIAlign in two-stage detectors is one); '
            'measure only epsilon-sharpness (power_iters=0, '
            'trace_samples=0; --power-iters 0 on the command line).'))


def measure(objective: Objective, options: SharpnessOptions) -> dict:
    """Every measure ``options`` ask for.

    Returns:
        dict: ``loss``, ``weight_norm``, ``lambda_max`` (and
        ``lambda_max_iterations``, ``lambda_max_converged``),
        ``eps_sharpness`` (and ``eps``, ``radius``), ``trace`` (and
        ``trace_stderr``), ``seconds``; a measure not asked for is None.
    """
    start = time.perf_counter()
    out: Dict[str, object] = dict(
        loss=objective.loss(), weight_norm=_norm(objective.params),
        lambda_max=None, eps=None, radius=None, eps_sharpness=None,
        trace=None, trace_stderr=None)
    if options.power_iters:
        top = top_hessian_eigenvalue(objective, options.power_iters,
                                     options.tol, options.seed)
        out.update(lambda_max=top['value'],
                   lambda_max_iterations=top['iterations'],
                   lambda_max_converged=top['converged'])
    if options.trace_samples:
        tr = hessian_trace(objective, options.trace_samples, options.seed)
        out.update(trace=tr['value'], trace_stderr=tr['stderr'])
    if options.eps:
        sharp = epsilon_sharpness(objective, options.eps,
                                  options.ascent_steps, options.seed)
        out.update(eps=options.eps, radius=sharp['radius'],
                   eps_sharpness=sharp['value'])
    out['seconds'] = time.perf_counter() - start
    return out


def final_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``last_checkpoint`` names in ``work_dir`` (looked up
    by file name in ``work_dir``, so that a moved folder still works), else
    the ``*.pth`` with the largest number, else None."""
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            path = osp.join(work_dir, osp.basename(f.read().strip()))
        if osp.isfile(path):
            return path
    found = glob.glob(osp.join(work_dir, '*.pth'))

    def number(p: str) -> int:
        nums = re.findall(r'\d+', osp.basename(p))
        return int(nums[-1]) if nums else -1

    return max(found, key=number) if found else None


def measure_checkpoint(config, checkpoint: str,
                       options: Optional[SharpnessOptions] = None) -> dict:
    """Build the config's model, load ``checkpoint`` (its ``state_dict``:
    for EMA and SEMA runs the EMA, the weights validation saw) and measure
    it on :func:`fixed_train_batches`.

    Args:
        config (str or Config): The config the checkpoint was trained with.
        checkpoint (str): The checkpoint file.
        options (SharpnessOptions, optional): What to measure.

    Returns:
        dict: :func:`measure`'s numbers, with ``checkpoint``, ``batches``
        and ``images``.

    Raises:
        SharpnessUnsupported: See :func:`mmengine_objective`.
    """
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint

    from ..cli.codebase import get_codebase

    options = options or SharpnessOptions()
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    get_codebase(cfg).require_installed(str(config))
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    device = options.device or ('cuda' if torch.cuda.is_available() else
                                'cpu')
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True,
                    logger='silent')
    model.to(device)
    batches = fixed_train_batches(cfg, options.batches, options.batch_size,
                                  options.seed)
    objective = mmengine_objective(model, batches, options.seed)
    out = measure(objective, options)
    out.update(checkpoint=checkpoint, batches=len(batches),
               images=sum(len(b['inputs']) for b in batches))
    return out


#: Measures shown in tables: key -> column title.
COLUMNS = {
    'loss': 'train loss (fixed batches)',
    'lambda_max': 'λ_max (Hessian) ↓',
    'eps_sharpness': 'ε-sharpness ↓',
    'trace': 'Hessian trace ↓',
}


def _mean_std(values: Sequence[float]) -> str:
    values = [float(v) for v in values if v is not None]
    if not values:
        return '-'
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f'{mean:.4g}'
    std = math.sqrt(sum((v - mean)**2 for v in values) / (len(values) - 1))
    return f'{mean:.4g} ± {std:.2g}'


def markdown_sharpness(rows: Dict[str, Dict[int, dict]]) -> str:
    """A Markdown table of the measures of each variant, mean ± sample std
    over its seeds (columns of measures nobody computed are left out).

    Args:
        rows (dict): Variant label -> (seed -> :func:`measure`'s dict).
    """
    shown = [k for k in COLUMNS
             if any(r.get(k) is not None for runs in rows.values()
                    for r in runs.values())]
    lines = ['| variant | runs | ' + ' | '.join(COLUMNS[k] for k in shown) +
             ' |', '|---|---|' + '---|' * len(shown)]
    for label, runs in rows.items():
        cells = [_mean_std([r.get(k) for r in runs.values()]) for k in shown]
        lines.append(f'| {label} | {len(runs)} | ' + ' | '.join(cells) +
                     ' |')
    return '\n'.join(lines)
