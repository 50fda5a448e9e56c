"""Run classification, pre-training and evaluation configs on the digits.

The configs under ``configs/classification`` and ``configs/selfsup*`` keep
the upstream ImageNet / CIFAR recipes. To run one of them on a CPU with the
data sema_mm makes itself (scikit-learn's digits written as an image folder
by :mod:`sema_mm.datasets.digits`, 32x32 grayscale PNGs), this module writes
a child config that inherits it and changes only what the data and a CPU
need, leaving hooks, optimizer, schedule shape and model type as they are:

* **data**: ``CustomDataset`` on ``<data_root>/train`` (and ``val`` for
  classification), ``num_workers=0``, a plain shuffling sampler,
  ``drop_last`` for pre-training (MoCo's queue needs full batches), the
  digits' pixel statistics in the data preprocessor, 10 classes;
* **pipelines at 32x32**: classification trains with ``RandomCrop(32,
  padding=2)`` and tests on the plain image; pre-training keeps the
  upstream pipeline (SimCLR / MoCo / BYOL multi-view augmentation, SimMIM
  masks, MAE crops) with every output size set to 32, SimMIM's mask
  generator set to 8-pixel mask patches over 4-pixel model patches;
* **tiny architectures of the same family**: ResNet (any depth) with 16
  stem / base channels, ViT-style backbones (DeiT, MoCo v3, MAE) with 2
  layers of 64 dims and 8-pixel patches, Swin with 16 dims, window 2 and
  padded small maps,
  ConvNeXt with channels 16-128; necks, heads, predictors, MoCo's queue
  and MAE's decoder follow;
* **a short, CPU run**: ``max_epochs`` (default 2) with every parameter
  scheduler compressed into it (same types and relative milestones,
  counted in iterations, each at least one iteration long), a checkpoint
  every epoch, ``AmpOptimWrapper`` replaced by ``OptimWrapper`` (AMP needs a
  GPU), seed 0.

The data folder must exist when the config is written (its size sets the
iterations per epoch).

Command line (the written config is then used like any other)::

    python -m sema_mm.datasets.digits --out data/digits
    python -m sema_mm.datasets.digits_config \\
        configs/selfsup/simclr/simclr_resnet50_16xb256-coslr-200e_in1k_sema.py\\
        work_dirs/simclr_digits.py --data-root data/digits
    python tools/train.py work_dirs/simclr_digits.py
"""
import argparse
import copy
import math
import os
import os.path as osp
import pprint
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config

from .digits import CLASSES

IMG_SIZE = 32
# Pixel statistics of the written digits (0-255 scale, see configs/demo).
MEAN = [78.0, 78.0, 78.0]
STD = [83.0, 83.0, 83.0]
# Tiny architectures.
RESNET_CHANNELS = 16
VIT = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)
VIT_PATCH = 8
SWIN = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
SWIN_PATCH = 4  # Swin's (and SimMIM's) patch size, kept
SWIN_WINDOW = 2
CONVNEXT = dict(depths=[1, 1, 1, 1], channels=[16, 32, 64, 128])
HIDDEN = 64  # hidden width of projection necks and predictors
PROJ = 32  # output width of projection necks
SIMMIM_MASK_PATCH = 8

CLASSIFIERS = ('ImageClassifier', )


def _type(cfg: Optional[dict]) -> str:
    """The registered name without its scope (``'mmselfsup.X'`` -> X)."""
    if not cfg:
        return ''
    return str(cfg.get('type', '')).split('.')[-1]


def _plain(obj: Any) -> Any:
    """ConfigDicts and tuples as plain dicts and lists."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


def _backbone(backbone: dict) -> Tuple[dict, int]:
    """Overrides of a backbone and the width of its output features."""
    kind = _type(backbone)
    new: Dict[str, Any] = {}
    if kind in ('ResNet', 'ResNet_CIFAR', 'ResNetV1c', 'ResNetV1d'):
        depth = backbone.get('depth', 50)
        expansion = 4 if depth >= 50 else 1
        new.update(stem_channels=RESNET_CHANNELS,
                   base_channels=RESNET_CHANNELS)
        return new, RESNET_CHANNELS * 8 * expansion
    if kind in ('VisionTransformer', 'MoCoV3ViT', 'MAEViT', 'BEiTViT'):
        new.update(arch=dict(VIT, _delete_=True), img_size=IMG_SIZE,
                   patch_size=VIT_PATCH)
        if backbone.get('frozen_stages', 0) > 0:
            new['frozen_stages'] = VIT['num_layers']
        return new, VIT['embed_dims']
    if kind in ('SwinTransformer', 'SimMIMSwinTransformer'):
        # SimMIM's Swin takes no patch_size (always 4) nor window_size.
        # The last stage is 1x1, smaller than a window: pad it.
        new.update(arch=dict(SWIN, _delete_=True), img_size=IMG_SIZE,
                   pad_small_map=True,
                   stage_cfgs=dict(block_cfgs=dict(window_size=SWIN_WINDOW)))
        if 'stage_cfgs' in backbone:
            new['stage_cfgs']['_delete_'] = True
        return new, SWIN['embed_dims'] * 8
    if kind == 'ConvNeXt':
        new.update(arch=dict(CONVNEXT, _delete_=True))
        return new, CONVNEXT['channels'][-1]
    raise ValueError(f'no tiny digits architecture for backbone {kind!r}')


def _neck(neck: Optional[dict], feat: int) -> Tuple[Optional[dict], int]:
    """Overrides of a neck and the width of its output."""
    if not neck:
        return None, feat
    kind = _type(neck)
    new: Dict[str, Any] = {}
    if kind == 'MAEPretrainDecoder':
        new.update(
            num_patches=(IMG_SIZE // VIT_PATCH)**2,
            patch_size=VIT_PATCH,
            embed_dim=feat,
            decoder_embed_dim=PROJ,
            decoder_depth=1,
            decoder_num_heads=2)
        return new, feat
    if 'input_features' in neck:  # ClsBatchNormNeck
        new['input_features'] = feat
    if 'in_channels' in neck:
        new['in_channels'] = feat
    out = feat
    if 'hid_channels' in neck:
        new['hid_channels'] = HIDDEN
    if 'out_channels' in neck:
        # Barlow Twins' projector is as wide as its hidden layers.
        out = HIDDEN if neck['out_channels'] == neck.get(
            'hid_channels') else PROJ
        new['out_channels'] = out
    return new, out


def _head(head: Optional[dict], feat: int, classifier: bool) -> dict:
    """Overrides of a head fed with ``feat`` channels."""
    if not head:
        return {}
    new: Dict[str, Any] = {}
    if classifier:
        new.update(num_classes=len(CLASSES), in_channels=feat)
        return new
    if 'in_channels' in head:
        new['in_channels'] = feat
    if head.get('predictor'):
        new['predictor'] = dict(
            in_channels=feat, hid_channels=HIDDEN, out_channels=feat)
    if 'patch_size' in head:
        kind = _type(head)
        new['patch_size'] = VIT_PATCH if kind.startswith('MAE') \
            else SWIN_PATCH
    return new


def _model(model: dict) -> dict:
    """Overrides of ``model``: tiny backbone, matching neck and head."""
    kind = _type(model)
    new: Dict[str, Any] = {}
    backbone, feat = _backbone(model['backbone'])
    new['backbone'] = backbone
    neck, out = _neck(model.get('neck'), feat)
    if neck is not None:
        new['neck'] = neck
    head = _head(model.get('head'), out, kind in CLASSIFIERS)
    if head:
        new['head'] = head
    if kind == 'MoCo':
        new.update(feat_dim=out, queue_len=256)
    if 'data_preprocessor' in model and model['data_preprocessor']:
        new['data_preprocessor'] = dict(mean=MEAN, std=STD)
    return new


def _resize_pipeline(pipeline: List[dict]) -> List[dict]:
    """The upstream pre-training pipeline with every output size at 32."""
    out = []
    for t in copy.deepcopy(_plain(pipeline)):
        kind = _type(t)
        if kind == 'RandomResizedCrop':
            if 'size' in t:  # mmselfsup / mmcv: size is the output side
                t['size'] = IMG_SIZE
            else:  # mmpretrain: scale is the output side
                t['scale'] = IMG_SIZE
        elif kind in ('Resize', 'CenterCrop', 'RandomCrop', 'ResizeEdge'):
            raise ValueError(f'unexpected {kind} in a pre-training pipeline')
        elif kind == 'SimMIMMaskGenerator':
            t.update(input_size=IMG_SIZE, mask_patch_size=SIMMIM_MASK_PATCH,
                     model_patch_size=SWIN_PATCH)
        elif kind == 'BEiTMaskGenerator':
            t['input_size'] = IMG_SIZE // VIT_PATCH
        if 'transforms' in t:
            inner = t['transforms']
            if inner and isinstance(inner[0], (list, tuple)):
                t['transforms'] = [_resize_pipeline(p) for p in inner]
            else:
                t['transforms'] = _resize_pipeline(inner)
        out.append(t)
    return out


def _count_images(folder: str) -> int:
    """Number of PNG files under ``folder``."""
    if not osp.isdir(folder):
        raise FileNotFoundError(
            f'{folder} does not exist: write the digits first, e.g. '
            f'`python -m sema_mm.datasets.digits --out {osp.dirname(folder)}`')
    return sum(
        f.endswith('.png') for _, _, files in os.walk(folder) for f in files)


def _compress_schedulers(schedulers: Any, upstream_epochs: int,
                         total_iters: int) -> List[dict]:
    """The upstream schedulers squeezed into ``total_iters`` iterations.

    Epoch-based ``begin``, ``end``, ``T_max`` and ``milestones`` are scaled
    by ``total_iters / upstream_epochs`` and counted in iterations; every
    scheduler keeps at least one iteration, and one that would start after
    the end of training is dropped.
    """
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    scale = total_iters / upstream_epochs
    out = []
    for s in _plain(list(schedulers or [])):
        s = dict(s)
        by_epoch = s.pop('by_epoch', True)
        s.pop('convert_to_iter_based', None)
        factor = scale if by_epoch else 1.0
        begin = int(round(s.get('begin', 0) * factor))
        if begin >= total_iters:
            continue
        end = s.get('end')
        end = total_iters if end is None or end * factor >= total_iters \
            else int(round(end * factor))
        end = max(end, begin + 1)
        s.update(begin=begin, end=end, by_epoch=False)
        if 'T_max' in s:
            s['T_max'] = end - begin
        if 'milestones' in s:
            s['milestones'] = [
                max(1, int(round(m * factor))) for m in s['milestones']
            ]
        out.append(s)
    return out


def _optim_wrapper(cfg: Config) -> Optional[dict]:
    """``OptimWrapper`` in place of ``AmpOptimWrapper`` (AMP needs a GPU)."""
    wrapper = _plain(cfg.get('optim_wrapper'))
    if not wrapper or wrapper.get('type') != 'AmpOptimWrapper':
        return None
    wrapper = dict(wrapper)
    wrapper.pop('loss_scale', None)
    wrapper.pop('dtype', None)
    wrapper.update(type='OptimWrapper', _delete_=True)
    return wrapper


def digits_overrides(cfg: Config,
                     data_root: str = 'data/digits',
                     max_epochs: int = 2,
                     batch_size: int = 16) -> Dict[str, Any]:
    """What a child config of ``cfg`` changes to run on the digits.

    Args:
        cfg (Config): A classification, pre-training or evaluation config.
        data_root (str): Folder written by :mod:`sema_mm.datasets.digits`.
        max_epochs (int): Training epochs. Defaults to 2.
        batch_size (int): Training batch size. Defaults to 16.

    Returns:
        dict: Top-level keys and their new values (with ``_delete_`` where a
        value replaces the upstream one).
    """
    model = _plain(cfg.model)
    classifier = _type(model) in CLASSIFIERS
    scope = cfg.get('default_scope')
    dataset_type = ('mmcls.CustomDataset'
                    if scope == 'mmselfsup' else 'CustomDataset')
    train = _plain(cfg.train_dataloader)
    upstream = train['dataset'].get('pipeline') or cfg.get(
        'train_pipeline')
    pack = _plain(upstream[-1])
    if classifier:
        pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='RandomCrop', crop_size=IMG_SIZE, padding=2),
            pack,
        ]
    else:
        pipeline = _resize_pipeline(upstream)

    def loader(split: str, pipe: list, shuffle: bool, size: int) -> dict:
        return dict(
            batch_size=size,
            num_workers=0,
            persistent_workers=False,
            drop_last=not classifier and split == 'train',
            sampler=dict(_delete_=True, type='DefaultSampler',
                         shuffle=shuffle),
            dataset=dict(
                _delete_=True,
                type=dataset_type,
                data_root=data_root,
                data_prefix=split,
                metainfo=dict(classes=list(CLASSES)),
                pipeline=pipe))

    images = _count_images(osp.join(data_root, 'train'))
    iters = images // batch_size if not classifier else math.ceil(
        images / batch_size)
    if iters < 1:
        raise ValueError(f'{data_root}/train has {images} images, fewer '
                         f'than one batch of {batch_size}.')
    upstream_epochs = cfg.train_cfg.get('max_epochs') or max_epochs
    new: Dict[str, Any] = dict(
        model=_model(model),
        train_dataloader=loader('train', pipeline, True, batch_size),
        train_cfg=dict(max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(interval=1, max_keep_ckpts=2),
            logger=dict(interval=10)),
        randomness=dict(seed=0, deterministic=False),
    )
    if 'data_preprocessor' in cfg and cfg.data_preprocessor:
        preprocessor = dict(mean=MEAN, std=STD)
        if classifier:
            preprocessor.update(num_classes=len(CLASSES), to_rgb=False)
        new['data_preprocessor'] = preprocessor
    if classifier:
        test_pipeline = [dict(type='LoadImageFromFile'), pack]
        for split in ('val_dataloader', 'test_dataloader'):
            if cfg.get(split):
                new[split] = loader('val', test_pipeline, False, 128)
    if cfg.get('param_scheduler'):
        new['param_scheduler'] = _compress_schedulers(
            cfg.param_scheduler, upstream_epochs, iters * max_epochs)
    wrapper = _optim_wrapper(cfg)
    if wrapper is not None:
        new['optim_wrapper'] = wrapper
    return new


def render_config(base: str, overrides: Dict[str, Any]) -> str:
    """Text of a config inheriting ``base`` with ``overrides``."""
    lines = [
        '"""Digits run of {} (written by '
        'sema_mm.datasets.digits_config)."""'.format(osp.basename(base)),
        f'_base_ = [{osp.abspath(base)!r}]',
    ]
    for key, value in overrides.items():
        lines.append(
            f'{key} = {pprint.pformat(value, width=78, compact=True)}')
    return '\n'.join(lines) + '\n'


def write_digits_config(config: str,
                        out: str,
                        data_root: str = 'data/digits',
                        max_epochs: int = 2,
                        batch_size: int = 16,
                        extra: Optional[Dict[str, Any]] = None) -> str:
    """Write a child config of ``config`` that runs on the digits.

    Args:
        config (str): The config to adapt.
        out (str): Path of the config to write.
        data_root (str): Folder written by :mod:`sema_mm.datasets.digits`.
        max_epochs (int): Training epochs. Defaults to 2.
        batch_size (int): Training batch size. Defaults to 16.
        extra (dict, optional): More top-level keys, written last (e.g.
            ``custom_hooks`` or ``custom_imports``); they replace the
            computed ones.

    Returns:
        str: ``out``.
    """
    cfg = Config.fromfile(config)
    overrides = digits_overrides(cfg, data_root, max_epochs, batch_size)
    overrides.update(extra or {})
    with open(out, 'w') as f:
        f.write(render_config(config, overrides))
    return out


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options of :func:`main`."""
    parser = argparse.ArgumentParser(
        description='Write a config that runs CONFIG on the digits folder '
        '(tiny architecture of the same family, 32x32 pipelines, CPU).')
    parser.add_argument('config', help='config to adapt')
    parser.add_argument('out', help='config file to write')
    parser.add_argument(
        '--data-root', default='data/digits',
        help='folder written by `python -m sema_mm.datasets.digits`')
    parser.add_argument('--epochs', type=int, default=2, help='max_epochs')
    parser.add_argument(
        '--batch-size', type=int, default=16, help='training batch size')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point: write the digits config and say so."""
    args = parse_args(argv)
    write_digits_config(args.config, args.out, args.data_root, args.epochs,
                        args.batch_size)
    print(f'wrote {args.out} (inherits {args.config})')


if __name__ == '__main__':
    main()
