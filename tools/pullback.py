"""Print SEMA's pull-back weight for a momentum and a switch interval.

After a switch, ``S`` EMA updates with momentum ``m`` (mmengine convention,
``m = 1 - alpha``) leave weight ``w = (1 - m) ** S`` on the weights of the
previous switch (see ``sema_mm/switching/pullback.py``). SwitchEMAHook warns
before training when ``w`` exceeds its ``pullback_threshold`` (0.5).

Usage::

    python tools/pullback.py --momentum 1e-3 --updates 7330
    python tools/pullback.py --paper    # the paper's settings (Table A1)
"""
import argparse
import math

from sema_mm.switching.pullback import momentum_for, pullback_weight

# (setting, images per epoch, batch size, SEMA alpha of Table A1)
PAPER_SETTINGS = [
    ('CIFAR-100 ResNet-18, batch 128', 50_000, 128, 0.99),
    ('COCO Mask R-CNN, batch 16', 117_266, 16, 0.999),
    ('ImageNet-1K ResNet-50 SGD, batch 256', 1_281_167, 256, 0.999),
    ('ImageNet-1K DeiT-S, batch 1024', 1_281_167, 1024, 0.999),
    ('ImageNet-1K ConvNeXt-T, batch 4096', 1_281_167, 4096, 0.999),
    ('ImageNet-1K SSL (CL), batch 4096', 1_281_167, 4096, 0.9999),
]


def row(name: str, momentum: float, updates: int,
        threshold: float) -> str:
    w = pullback_weight(lambda k: momentum, 1, updates)
    verdict = 'warns' if w > threshold else 'silent'
    fix = (f'{momentum_for(threshold, updates):.3g}'
           if w > threshold else '')
    return (f'| {name} | {momentum:g} | {updates} | {w:.3g} | {verdict} | '
            f'{fix} |')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--momentum', type=float)
    parser.add_argument('--updates', type=int,
                        help='EMA updates (optimizer steps) per switch')
    parser.add_argument('--threshold', type=float, default=0.5)
    parser.add_argument('--paper', action='store_true')
    args = parser.parse_args()
    print('| setting | momentum | updates per switch | pull-back w | '
          'guard | momentum for w = threshold |')
    print('|---|---|---|---|---|---|')
    if args.momentum is not None and args.updates:
        print(row('given', args.momentum, args.updates, args.threshold))
    if args.paper:
        for name, images, batch, alpha in PAPER_SETTINGS:
            print(row(name, round(1 - alpha, 6), math.ceil(images / batch),
                      args.threshold))


if __name__ == '__main__':
    main()
