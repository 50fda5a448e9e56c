"""Tiny registered model, dataset and metric for tests of the real Runner.

Import it from a config with ``custom_imports=dict(imports=['tests.toy'])``
(the repository root on ``PYTHONPATH``). Everything is deterministic from a
seed and small enough to train in well under a second on a CPU.
"""
from typing import List, Optional, Sequence

import torch
from mmengine.dataset import default_collate
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel, ExponentialMovingAverage
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import (
    DATASETS,
    FUNCTIONS,
    METRICS,
    MODELS,
    OPTIM_WRAPPERS,
)
from torch import nn
from torch.utils.data import Dataset


@DATASETS.register_module()
class ToyDataset(Dataset):
    """``num_samples`` 3x8x8 images whose label is a fixed random linear
    function of the pixels (so the task is learnable), from ``seed``."""

    def __init__(self, num_samples: int = 32, num_classes: int = 3,
                 seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.inputs = torch.randn(num_samples, 3, 8, 8, generator=g)
        teacher = torch.randn(3 * 8 * 8, num_classes,
                              generator=torch.Generator().manual_seed(1234))
        self.labels = (self.inputs.flatten(1) @ teacher).argmax(1)
        self.metainfo = dict(classes=tuple(range(num_classes)))

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, idx: int) -> dict:
        return dict(inputs=self.inputs[idx], label=self.labels[idx])


FUNCTIONS.register_module(name='toy_collate', module=default_collate)


@MODELS.register_module()
class ToyClassifier(BaseModel):
    """Conv + BatchNorm (or SyncBN) + linear classifier on 3x8x8 inputs."""

    def __init__(self, num_classes: int = 3, width: int = 8,
                 nan_loss_at: Optional[int] = None,
                 sync_bn: bool = False) -> None:
        super().__init__()
        norm = nn.SyncBatchNorm if sync_bn else nn.BatchNorm2d
        self.backbone = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), norm(width),
            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, num_classes)
        self.nan_loss_at = nan_loss_at
        self.register_buffer('calls', torch.tensor(0))

    def forward(self, inputs: torch.Tensor, label=None, mode: str = 'loss'):
        logits = self.head(self.backbone(inputs))
        if mode == 'tensor':
            return logits
        if mode == 'predict':
            return [
                dict(pred=int(p), gt=int(g))
                for p, g in zip(logits.argmax(1), label)
            ]
        self.calls += 1
        self.train_dtype = logits.dtype
        loss = nn.functional.cross_entropy(logits, label)
        if self.nan_loss_at is not None and int(self.calls) == \
                self.nan_loss_at:
            loss = loss * float('nan')
        return dict(loss=loss)


@MODELS.register_module()
class ToyMomentumModel(ToyClassifier):
    """A MoCo-like model: a momentum teacher ``encoder_k`` (an mmengine
    averaged model updated inside ``loss``) and a ``queue`` of teacher
    features with an integer pointer, as in MoCo v2."""

    def __init__(self, teacher_momentum: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.encoder_k = ExponentialMovingAverage(self.backbone,
                                                  teacher_momentum)
        width = self.head.in_features
        self.register_buffer('queue', torch.zeros(16, width))
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))

    def forward(self, inputs: torch.Tensor, label=None, mode: str = 'loss'):
        if mode != 'loss':
            return super().forward(inputs, label, mode)
        self.encoder_k.update_parameters(self.backbone)
        with torch.no_grad():
            keys = self.encoder_k(inputs)
        ptr = int(self.queue_ptr)
        n = min(len(keys), len(self.queue) - ptr)
        self.queue[ptr:ptr + n] = keys[:n]
        self.queue_ptr[0] = (ptr + n) % len(self.queue)
        loss = super().forward(inputs, label, mode)['loss']
        return dict(loss=loss + 1e-3 * (self.backbone(inputs) - keys).pow(2)
                    .mean())


@DATASETS.register_module()
class ToyRegressionDataset(Dataset):
    """``num_samples`` inputs of ``num_features`` with scales growing from
    0.2 to 2 (a spread-out Hessian) and a noisy linear target, from
    ``seed``."""

    def __init__(self, num_samples: int = 64, num_features: int = 6,
                 seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        scale = torch.linspace(0.2, 2.0, num_features)
        self.inputs = torch.randn(num_samples, num_features,
                                  generator=g) * scale
        self.targets = self.inputs @ torch.randn(
            num_features, generator=g) + 0.1 * torch.randn(num_samples,
                                                           generator=g)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, idx: int) -> dict:
        return dict(inputs=self.inputs[idx], target=self.targets[idx])


@MODELS.register_module()
class ToyRegressor(BaseModel):
    """Linear least squares: ``mean((x w + b - y)^2)``, whose Hessian in
    ``(w, b)`` is ``2 / N [X 1]^T [X 1]`` for a batch of ``N`` rows."""

    def __init__(self, num_features: int = 6) -> None:
        super().__init__()
        self.linear = nn.Linear(num_features, 1)

    def forward(self, inputs: torch.Tensor, target=None,
                mode: str = 'loss'):
        pred = self.linear(inputs).squeeze(1)
        if mode == 'tensor':
            return pred
        return dict(loss=((pred - target)**2).mean())


@MODELS.register_module()
class ToyRoIClassifier(BaseModel):
    """Conv features pooled by mmcv's ``RoIAlign`` (as in two-stage
    detectors) over a fixed box per image, then a linear classifier. mmcv
    is imported when the model is built."""

    def __init__(self, num_classes: int = 3, width: int = 4) -> None:
        super().__init__()
        from mmcv.ops import RoIAlign
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.roi = RoIAlign((2, 2), 1.0, 0)
        self.head = nn.Linear(width * 4, num_classes)

    def forward(self, inputs: torch.Tensor, label=None, mode: str = 'loss'):
        boxes = torch.tensor([[1.0, 1.0, 6.0, 6.0]]).repeat(len(inputs), 1)
        rois = torch.cat([torch.arange(len(inputs))[:, None].float(), boxes],
                         1)
        logits = self.head(self.roi(self.conv(inputs), rois).flatten(1))
        return dict(loss=nn.functional.cross_entropy(logits, label))


@METRICS.register_module()
class ToyAccuracy(BaseMetric):
    """Top-1 accuracy (%) of :class:`ToyClassifier` predictions."""

    default_prefix = "toy"

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        self.results.extend(data_samples)

    def compute_metrics(self, results: List[dict]) -> dict:
        correct = sum(r['pred'] == r['gt'] for r in results)
        return dict(accuracy=100.0 * correct / max(len(results), 1))


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(AmpOptimWrapper):
    """mmengine's AmpOptimWrapper (autocast in ``optim_context``) with
    bfloat16 autocast on the CPU, where upstream asserts an accelerator.
    bfloat16 needs no loss scaling, so the scaler is disabled."""

    def __init__(self, **kwargs) -> None:
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        # torch.amp.GradScaler appeared in torch 2.3; a disabled CUDA scaler
        # is the same no-op on older torch.
        self.loss_scaler = (
            torch.amp.GradScaler('cpu', enabled=False) if hasattr(
                torch.amp, 'GradScaler') else torch.cuda.amp.GradScaler(
                    enabled=False))
        self.cast_dtype = torch.bfloat16


def toy_config(work_dir: str, **overrides) -> dict:
    """A complete Runner config for :class:`ToyClassifier` (epoch-based,
    momentum SGD, a multi-step LR schedule, a shuffled sampler, BN,
    deterministic CPU settings). ``overrides`` replace top-level keys."""
    loader = dict(
        batch_size=4,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=True),
        collate_fn=dict(type='toy_collate'),
        dataset=dict(type='ToyDataset', num_samples=32))
    cfg = dict(
        model=dict(type='ToyClassifier'),
        work_dir=work_dir,
        train_dataloader=loader,
        val_dataloader=dict(loader, sampler=dict(
            type='DefaultSampler', shuffle=False)),
        val_evaluator=dict(type='ToyAccuracy'),
        val_cfg=dict(),
        train_cfg=dict(by_epoch=True, max_epochs=4, val_interval=1),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9,
                           weight_decay=1e-4)),
        param_scheduler=dict(type='MultiStepLR', milestones=[2, 3],
                             gamma=0.5),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='SwitchEMAHook', momentum=0.2)],
        randomness=dict(seed=0, deterministic=True),
        env_cfg=dict(cudnn_benchmark=False),
        log_level='WARNING',
        default_scope='mmengine',
    )
    cfg.update(overrides)
    return cfg


def iteration_loop(max_iters: int, milestone: int,
                   checkpoint_interval: int) -> dict:
    """Overrides of :func:`toy_config` for an ``IterBasedTrainLoop`` (an
    infinite shuffled sampler, an LR step at iteration ``milestone``,
    checkpoints and validation every ``checkpoint_interval`` iterations)."""
    return dict(
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters,
                       val_interval=checkpoint_interval),
        train_dataloader=dict(
            batch_size=4, num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            collate_fn=dict(type='toy_collate'),
            dataset=dict(type='ToyDataset', num_samples=32)),
        param_scheduler=dict(type='MultiStepLR', milestones=[milestone],
                             by_epoch=False),
        default_hooks=dict(checkpoint=dict(
            type='CheckpointHook', interval=checkpoint_interval,
            by_epoch=False)))
