"""A small COCO-format instance segmentation dataset of random shapes.

COCO cannot be downloaded everywhere; detection demos and tests need real
COCO-format data all the same. :func:`make_synthetic_coco` draws images with a
few filled shapes of three classes (``rectangle``, ``ellipse``, ``triangle``)
on a noisy background and writes, deterministically from a seed::

    <root>/annotations/instances_train.json
    <root>/annotations/instances_val.json
    <root>/train/000000.png ...
    <root>/val/000000.png ...

Each object has a box (``[x, y, w, h]``, pixels), a polygon mask and its area,
as mmdet's ``CocoDataset`` and pycocotools expect. Point any mmdet config at it
with :func:`synthetic_coco_cfg_options` (or the ``--cfg-options`` it prints):

    python -m sema_mm.datasets.synthetic_coco --out data/synthetic_coco
"""
import argparse
import json
import math
import os
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ('rectangle', 'ellipse', 'triangle')


def _polygon(kind: str, cx: float, cy: float, rw: float, rh: float,
             angle: float) -> List[Tuple[float, float]]:
    """Vertices of a shape centred at (cx, cy) with radii (rw, rh)."""
    if kind == 'rectangle':
        base = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    elif kind == 'triangle':
        base = [(0, -1), (1, 1), (-1, 1)]
    else:
        base = [(math.cos(t), math.sin(t))
                for t in np.linspace(0, 2 * math.pi, 16, endpoint=False)]
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + rw * x * c - rh * y * s, cy + rw * x * s + rh * y * c)
            for x, y in base]


def _draw_image(rng: np.random.Generator, size: int,
                max_objects: int) -> Tuple[Image.Image, List[dict]]:
    """One image and its objects (class index, polygon)."""
    noise = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    img = Image.fromarray(noise + np.uint8(40))
    draw = ImageDraw.Draw(img)
    objects = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        label = int(rng.integers(len(CLASSES)))
        rw, rh = rng.uniform(0.08, 0.22, 2) * size
        cx, cy = rng.uniform(0.25, 0.75, 2) * size
        poly = _polygon(CLASSES[label], cx, cy, rw, rh,
                        float(rng.uniform(0, math.pi)))
        poly = [(min(max(x, 0.0), size - 1.0), min(max(y, 0.0), size - 1.0))
                for x, y in poly]
        colour = tuple(int(v) for v in rng.integers(120, 256, 3))
        draw.polygon(poly, fill=colour)
        objects.append(dict(label=label, polygon=poly))
    return img, objects


def _polygon_area(poly: List[Tuple[float, float]]) -> float:
    xs, ys = np.array(poly).T
    return float(0.5 * abs(np.dot(xs, np.roll(ys, 1)) -
                           np.dot(ys, np.roll(xs, 1))))


def _write_split(root: str, split: str, num_images: int, size: int,
                 max_objects: int, rng: np.random.Generator) -> str:
    os.makedirs(osp.join(root, split), exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        img, objects = _draw_image(rng, size, max_objects)
        name = f'{i:06d}.png'
        img.save(osp.join(root, split, name))
        images.append(dict(id=i + 1, file_name=name, width=size,
                           height=size))
        for obj in objects:
            xs, ys = np.array(obj['polygon']).T
            x0, y0 = float(xs.min()), float(ys.min())
            annotations.append(
                dict(id=len(annotations) + 1, image_id=i + 1,
                     category_id=obj['label'] + 1,
                     bbox=[x0, y0, float(xs.max()) - x0,
                           float(ys.max()) - y0],
                     segmentation=[[c for p in obj['polygon'] for c in p]],
                     area=_polygon_area(obj['polygon']), iscrowd=0))
    ann_file = osp.join(root, 'annotations', f'instances_{split}.json')
    os.makedirs(osp.dirname(ann_file), exist_ok=True)
    with open(ann_file, 'w') as f:
        json.dump(dict(
            images=images, annotations=annotations,
            categories=[dict(id=k + 1, name=n) for k, n in
                        enumerate(CLASSES)]), f)
    return ann_file


def make_synthetic_coco(root: str, num_train: int = 16, num_val: int = 8,
                        size: int = 96, max_objects: int = 3,
                        seed: int = 0) -> Dict[str, str]:
    """Write the dataset under ``root`` (idempotent for equal arguments).

    Args:
        root (str): Output folder.
        num_train (int): Training images. Defaults to 16.
        num_val (int): Validation images. Defaults to 8.
        size (int): Image side in pixels. Defaults to 96.
        max_objects (int): At most this many shapes per image. Defaults to 3.
        seed (int): Random seed; equal arguments give identical files.

    Returns:
        dict: ``data_root`` and the two annotation files.
    """
    params = dict(num_train=num_train, num_val=num_val, size=size,
                  max_objects=max_objects, seed=seed)
    stamp = osp.join(root, 'params.json')
    out = dict(data_root=root,
               train=osp.join(root, 'annotations', 'instances_train.json'),
               val=osp.join(root, 'annotations', 'instances_val.json'))
    if osp.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == params:
                return out
    rng = np.random.default_rng(seed)
    _write_split(root, 'train', num_train, size, max_objects, rng)
    _write_split(root, 'val', num_val, size, max_objects, rng)
    with open(stamp, 'w') as f:
        json.dump(params, f)
    return out


def synthetic_coco_cfg_options(root: str, scale: int = 96) -> dict:
    """``--cfg-options`` that point an mmdet COCO config at the dataset.

    Sets the data root, annotation files, image folders and class names of
    the train, val and test loaders and evaluators. Image scales of the
    pipelines are left to the caller (see the detection configs' README).
    """
    meta = dict(classes=CLASSES)
    opts = {}
    for loader, split in (('train_dataloader', 'train'),
                          ('val_dataloader', 'val'),
                          ('test_dataloader', 'val')):
        prefix = f'{loader}.dataset.'
        opts[prefix + 'data_root'] = root
        opts[prefix + 'ann_file'] = f'annotations/instances_{split}.json'
        opts[prefix + 'data_prefix'] = dict(img=f'{split}/')
        opts[prefix + 'metainfo'] = meta
    for evaluator in ('val_evaluator', 'test_evaluator'):
        opts[evaluator + '.ann_file'] = osp.join(
            root, 'annotations', 'instances_val.json')
    return opts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/synthetic_coco')
    parser.add_argument('--num-train', type=int, default=16)
    parser.add_argument('--num-val', type=int, default=8)
    parser.add_argument('--size', type=int, default=96)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    out = make_synthetic_coco(args.out, args.num_train, args.num_val,
                              args.size, seed=args.seed)
    print(f'wrote {out["train"]} and {out["val"]}')


if __name__ == '__main__':
    main()
