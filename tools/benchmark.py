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

Usage::

    python tools/benchmark.py [--models resnet50 mask_rcnn vit_b]
                              [--device cpu] [--repeat 20]
"""
import argparse
import statistics
import time
from typing import Callable, Dict, List

import torch
from mmengine.model import ExponentialMovingAverage
from torch import nn

from sema_mm.models import FusedEMA


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


def timed(fn: Callable[[], None], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes (synchronised on accelerators)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def measure(cases: Dict[str, Callable[[], None]], device: torch.device,
            warmup: int, repeat: int) -> Dict[str, float]:
    """Median seconds per case, the cases run round-robin."""
    samples: Dict[str, List[float]] = {k: [] for k in cases}
    for i in range(warmup + repeat):
        for name, fn in cases.items():
            t = timed(fn, device)
            if i >= warmup:
                samples[name].append(t)
    return {k: statistics.median(v) for k, v in samples.items()}


def bench_model(name: str, device: torch.device, warmup: int,
                repeat: int) -> List[str]:
    """Markdown table rows for one model."""
    model = build_model(name).to(device)
    params = [p for p in model.parameters() if p.is_floating_point()]
    numel = sum(p.numel() for p in params)
    fused = FusedEMA(model, momentum=1e-3)
    fused.seed(model)
    mme = ExponentialMovingAverage(model, momentum=1e-3)
    mme.update_parameters(model)  # its first call only copies
    flat_ema = torch.zeros(numel, device=device)
    flat_src = torch.randn(numel, device=device)
    pairs = fused.pairs_for(model)
    ema_params = list(fused.module.parameters())

    def loop_copy() -> None:
        with torch.no_grad():
            for p, q in zip(params, ema_params):
                p.copy_(q)

    update = measure(
        dict(fused=lambda: fused.update_parameters(model),
             mmengine=lambda: mme.update_parameters(model),
             floor=lambda: flat_ema.lerp_(flat_src, 1e-3)), device, warmup,
        repeat)
    switch = measure(
        dict(fused=pairs.copy_to_source, loop=loop_copy,
             floor=lambda: flat_src.copy_(flat_ema)), device, warmup, repeat)
    ms = {k: v * 1e3 for k, v in update.items()}
    sw = {k: v * 1e3 for k, v in switch.items()}
    return [
        f'| {name} | {numel / 1e6:.1f}M | {len(params)} | update | '
        f"{ms['fused']:.2f} | {ms['mmengine']:.2f} | {ms['floor']:.2f} | "
        f"{ms['fused'] / ms['floor']:.2f}x | "
        f"{ms['mmengine'] / ms['fused']:.2f}x |",
        f'| {name} | | | switch | {sw["fused"]:.2f} | {sw["loop"]:.2f} '
        f'(per-tensor copy) | {sw["floor"]:.2f} | '
        f'{sw["fused"] / sw["floor"]:.2f}x | '
        f'{sw["loop"] / sw["fused"]:.2f}x |',
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+',
                        default=['resnet50', 'mask_rcnn', 'vit_b'])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeat', type=int, default=20)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f'device: {device}, torch {torch.__version__}, '
          f'threads: {torch.get_num_threads()}')
    print('| model | params | tensors | op | SwitchEMAHook (ms) | '
          'mmengine (ms) | floor (ms) | vs floor | speed-up vs mmengine |')
    print('|---|---|---|---|---|---|---|---|---|')
    for name in args.models:
        for row in bench_model(name, device, args.warmup, args.repeat):
            print(row, flush=True)


if __name__ == '__main__':
    main()
