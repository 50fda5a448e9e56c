"""Write scikit-learn's 8x8 handwritten digits as an image folder.

The digits (``sklearn.datasets.load_digits``: 1797 grayscale 8x8 images of
the digits 0-9, shipped inside scikit-learn, so nothing is downloaded) are
written in the layout that mmpretrain's ``CustomDataset`` reads without an
annotation file::

    <root>/train/<class>/<idx>.png     # class: '0' ... '9'
    <root>/val/<class>/<idx>.png       # idx: index in load_digits, 4 digits
    <root>/meta.json                   # parameters, counts, noisy labels

Each image is scaled from the digits' 0-16 range to 0-255 and upscaled with
bilinear interpolation to ``size`` x ``size`` pixels (32 by default). The
PNGs are single-channel (grayscale); mmpretrain's ``LoadImageFromFile``
reads them as 3-channel images with the gray value in every channel.

The train/val split is stratified (``val_fraction`` of every class goes to
``val``) and, like the optional training subset and label noise, follows
from ``seed`` alone. Label noise is symmetric: a fraction ``label_noise`` of
the training images is filed under a uniformly drawn *wrong* class, while
``val`` always keeps the true labels. A small, noisy training set is where
averaging the weights can matter.

Writing is idempotent: when ``<root>/meta.json`` records the same parameters
and every file is in place, nothing is written. Run it as::

    python -m sema_mm.datasets.digits --out data/digits
    python -m sema_mm.datasets.digits --out data/digits_noisy \\
        --train-size 300 --label-noise 0.2
"""
import argparse
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log

from ..records import read_json, write_json

DEFAULT_ROOT = 'data/digits'
CLASSES = tuple(str(i) for i in range(10))
META_FILE = 'meta.json'
SPLITS = ('train', 'val')
# Bump when the files written for the same parameters change.
FORMAT_VERSION = 1


def _check_params(size: int, val_fraction: float,
                  train_size: Optional[int], label_noise: float) -> None:
    """Raise ``ValueError`` on parameters outside their ranges."""
    if not isinstance(size, int) or size < 8:
        raise ValueError(f'size must be an int >= 8 (pixels), got {size!r}')
    if not 0 < val_fraction < 1:
        raise ValueError(
            f'val_fraction must lie in (0, 1), got {val_fraction!r}')
    if train_size is not None and (not isinstance(train_size, int)
                                   or train_size < len(CLASSES)):
        raise ValueError(
            f'train_size must be None or an int >= {len(CLASSES)} (one '
            f'image per class), got {train_size!r}')
    if not 0 <= label_noise < 1:
        raise ValueError(
            f'label_noise must lie in [0, 1), got {label_noise!r}')


def split_digits(labels: np.ndarray,
                 val_fraction: float = 0.3,
                 train_size: Optional[int] = None,
                 label_noise: float = 0.0,
                 seed: int = 0) -> Dict[str, np.ndarray]:
    """Split the digits into train and val, from ``seed`` alone.

    Args:
        labels (np.ndarray): True label of every image, shape ``(N,)``.
        val_fraction (float): Fraction of every class put in ``val``
            (rounded per class). Defaults to 0.3.
        train_size (int, optional): Keep only this many training images,
            drawn round-robin over the classes so that they stay balanced.
            Defaults to None (all of them).
        label_noise (float): Fraction of the training images (rounded)
            given a uniformly drawn wrong label. Defaults to 0.
        seed (int): Seed of the split, the subset and the noise.
            Defaults to 0.

    Returns:
        dict: ``train`` and ``val`` (indices into ``labels``, sorted),
        ``train_labels`` (the labels the training images are filed under,
        noise included) and ``noisy`` (positions in ``train`` whose label
        was changed).
    """
    rng = np.random.default_rng(seed)
    val: List[int] = []
    per_class: List[np.ndarray] = []
    for c in range(len(CLASSES)):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(idx) * val_fraction))
        val.extend(idx[:n_val].tolist())
        per_class.append(idx[n_val:])
    # Round-robin over the classes: any prefix is balanced to within one.
    depth = max(len(p) for p in per_class)
    train = [
        int(p[k]) for k in range(depth) for p in per_class if k < len(p)
    ]
    if train_size is not None:
        if train_size > len(train):
            raise ValueError(
                f'train_size={train_size} exceeds the {len(train)} training '
                f'images left by val_fraction={val_fraction}')
        train = train[:train_size]
    train_arr = np.sort(np.asarray(train, dtype=np.int64))
    train_labels = labels[train_arr].copy()
    n_noisy = int(round(label_noise * len(train_arr)))
    noisy = np.sort(rng.choice(len(train_arr), n_noisy, replace=False))
    shift = rng.integers(1, len(CLASSES), size=n_noisy)
    train_labels[noisy] = (train_labels[noisy] + shift) % len(CLASSES)
    return dict(
        train=train_arr,
        val=np.sort(np.asarray(val, dtype=np.int64)),
        train_labels=train_labels,
        noisy=noisy)


def _to_png(image: np.ndarray, size: int, path: str) -> None:
    """Save one 8x8 digit (values 0-16) as a ``size`` x ``size`` PNG."""
    from PIL import Image
    pixels = np.clip(np.rint(image * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).resize(  # uint8 2-D array: mode 'L'
        (size, size), Image.Resampling.BILINEAR).save(path)


def _count_pngs(root: str) -> Dict[str, int]:
    """Number of ``.png`` files under each split of ``root``."""
    counts = {}
    for split in SPLITS:
        n = 0
        for _, _, files in os.walk(osp.join(root, split)):
            n += sum(f.endswith('.png') for f in files)
        counts[split] = n
    return counts


def _result(root: str, meta: dict, written: bool) -> dict:
    """What :func:`make_digits` returns, from a ``meta.json`` record."""
    return dict(
        root=root,
        train_dir=osp.join(root, 'train'),
        val_dir=osp.join(root, 'val'),
        classes=list(CLASSES),
        num_train=meta['num_train'],
        num_val=meta['num_val'],
        num_noisy=len(meta['noisy']),
        train_per_class=meta['train_per_class'],
        val_per_class=meta['val_per_class'],
        params=meta['params'],
        written=written)


def make_digits(root: str = DEFAULT_ROOT,
                size: int = 32,
                val_fraction: float = 0.3,
                train_size: Optional[int] = None,
                label_noise: float = 0.0,
                seed: int = 0,
                overwrite: bool = False) -> dict:
    """Write the digits under ``root`` as an mmpretrain image folder.

    Args:
        root (str): Folder to write; ``train/``, ``val/`` and ``meta.json``
            are created in it. Defaults to ``'data/digits'``.
        size (int): Side of the written images in pixels (the digits are
            8x8, upscaled bilinearly). Defaults to 32.
        val_fraction (float): Fraction of every class put in ``val``.
            Defaults to 0.3 (1258 train, 539 val images).
        train_size (int, optional): Keep only this many training images
            (class-balanced); ``val`` is unchanged. Defaults to None (all).
        label_noise (float): Fraction of the training images filed under a
            wrong class, drawn uniformly. Defaults to 0.
        seed (int): Seed of the split, subset and noise. Defaults to 0.
        overwrite (bool): Replace ``train/`` and ``val/`` even when ``root``
            holds them without a ``meta.json`` of this writer. Folders with
            one are replaced whenever the parameters differ. Defaults to
            False.

    Returns:
        dict: ``root``, ``train_dir``, ``val_dir``, ``classes``,
        ``num_train``, ``num_val``, ``num_noisy`` (training images with a
        wrong label), ``train_per_class`` and ``val_per_class`` (image
        counts by filed label), ``params`` and ``written`` (False when the
        folder was already complete and nothing was written).
    """
    _check_params(size, val_fraction, train_size, label_noise)
    params = dict(
        format=FORMAT_VERSION,
        size=size,
        val_fraction=val_fraction,
        train_size=train_size,
        label_noise=label_noise,
        seed=seed)
    meta = read_json(osp.join(root, META_FILE))
    if meta is not None and meta.get('params') == params:
        counts = _count_pngs(root)
        if (counts['train'] == meta['num_train']
                and counts['val'] == meta['num_val']):
            return _result(root, meta, written=False)
    if meta is None and not overwrite and any(
            osp.exists(osp.join(root, s)) for s in SPLITS):
        raise FileExistsError(
            f'{root} already holds train/ or val/ without a {META_FILE} of '
            'this writer; pass overwrite=True (--overwrite) to replace them.')

    from sklearn.datasets import load_digits
    digits = load_digits()
    labels = np.asarray(digits.target, dtype=np.int64)
    split = split_digits(labels, val_fraction, train_size, label_noise, seed)

    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.digits-', dir=root)
    try:
        filed = dict(
            train=zip(split['train'].tolist(),
                      split['train_labels'].tolist()),
            val=((i, int(labels[i])) for i in split['val'].tolist()))
        per_class = {}
        for name, items in filed.items():
            counts = [0] * len(CLASSES)
            for c in CLASSES:
                os.makedirs(osp.join(tmp, name, c))
            for i, c in items:
                _to_png(digits.images[i], size,
                        osp.join(tmp, name, CLASSES[c], f'{i:04d}.png'))
                counts[c] += 1
            per_class[name] = counts
        # meta.json goes first and comes back last, so that an interrupted
        # rewrite is never taken for a complete folder.
        if meta is not None:
            os.remove(osp.join(root, META_FILE))
        for name in SPLITS:
            shutil.rmtree(osp.join(root, name), ignore_errors=True)
            os.replace(osp.join(tmp, name), osp.join(root, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    noisy = [
        dict(
            file=f'train/{CLASSES[int(split["train_labels"][k])]}/'
            f'{int(split["train"][k]):04d}.png',
            true_label=int(labels[split['train'][k]]))
        for k in split['noisy'].tolist()
    ]
    meta = dict(
        params=params,
        source='sklearn.datasets.load_digits',
        classes=list(CLASSES),
        num_train=int(len(split['train'])),
        num_val=int(len(split['val'])),
        train_per_class=per_class['train'],
        val_per_class=per_class['val'],
        noisy=noisy)
    write_json(osp.join(root, META_FILE), meta)
    return _result(root, meta, written=True)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options of :func:`main`."""
    parser = argparse.ArgumentParser(
        description='Write scikit-learn\'s 8x8 digits as an mmpretrain '
        'image folder (<out>/train/<class>/<idx>.png, <out>/val/...).')
    parser.add_argument(
        '--out', default=DEFAULT_ROOT, help='output folder')
    parser.add_argument(
        '--size', type=int, default=32, help='image side in pixels')
    parser.add_argument(
        '--val-fraction', type=float, default=0.3,
        help='fraction of every class put in val')
    parser.add_argument(
        '--train-size', type=int, default=None,
        help='keep only this many (class-balanced) training images')
    parser.add_argument(
        '--label-noise', type=float, default=0.0,
        help='fraction of training images given a wrong label')
    parser.add_argument('--seed', type=int, default=0, help='split seed')
    parser.add_argument(
        '--overwrite', action='store_true',
        help='replace train/ and val/ even if not written by this tool')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point: write the digits folder and log what it holds."""
    args = parse_args(argv)
    info = make_digits(
        args.out,
        size=args.size,
        val_fraction=args.val_fraction,
        train_size=args.train_size,
        label_noise=args.label_noise,
        seed=args.seed,
        overwrite=args.overwrite)
    state = 'wrote' if info['written'] else 'up to date:'
    print_log(
        f'digits: {state} {info["root"]} ({info["num_train"]} train images, '
        f'{info["num_noisy"]} of them with a wrong label; '
        f'{info["num_val"]} val images; {args.size}x{args.size} PNG)',
        logger='current')


if __name__ == '__main__':
    main()
