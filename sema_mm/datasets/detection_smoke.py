"""Run any mmdet COCO config at a tiny scale on the synthetic COCO data.

:func:`smoke_cfg_options` reads a config and returns the ``--cfg-options``
that point its loaders, evaluators and heads (``num_classes``) at the data
of :mod:`sema_mm.datasets.synthetic_coco`, inside dataset wrappers such as
``RepeatDataset`` and ``MultiImageMixDataset`` too, and shrink what makes a
run slow: every image scale of the pipelines and of YOLOX's batch resizing,
the batch size, loader workers, the number of proposals and sampled boxes,
and the pretrained backbone (no download). The score threshold of the test
output is set to 0, so that an untrained model still gives the COCO metric
something to evaluate::

    python -m sema_mm.datasets.detection_smoke CONFIG [--root DIR]

writes the data (if needed) and prints the options, for example::

    python tools/train.py CONFIG --cfg-options $(python -m \\
        sema_mm.datasets.detection_smoke CONFIG)
"""
import argparse
import os.path as osp
from typing import Any, Dict, List, Optional

from mmengine.config import Config

from .synthetic_coco import (
    CLASSES,
    make_synthetic_coco,
    synthetic_coco_cfg_options,
)

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _datasets(cfg: Config, loader: str):
    """``(key, dataset)`` for ``loader``'s dataset and every dataset it
    wraps, outermost first."""
    key, dataset = f'{loader}.dataset', cfg[loader]['dataset']
    while True:
        yield key, dataset
        if 'dataset' not in dataset:
            return
        key, dataset = f'{key}.dataset', dataset['dataset']


def _scale_options(key: str, pipeline: List[dict], scale: int) -> Dict:
    """Options setting every image scale of ``pipeline`` to ``scale``."""
    opts = {}
    for i, transform in enumerate(pipeline):
        prefix = f'{key}.pipeline.{i}.'
        for name in ('scale', 'img_scale'):
            value = transform.get(name)
            if isinstance(value, tuple):
                opts[prefix + name] = (scale, scale)
            elif isinstance(value, list):
                opts[prefix + name] = [(scale, scale)] * len(value)
        if transform.get('type') == 'RandomAffine' and 'border' in transform:
            opts[prefix + 'border'] = (-scale // 2, -scale // 2)
    return opts


def _items(node: Any):
    """``(name, child)`` of a config dict, or of a list by index."""
    if isinstance(node, dict):
        return list(node.items())
    if isinstance(node, list):
        return [(str(i), v) for i, v in enumerate(node)]
    return []


def _walk_options(key: str, node: Any, num_classes: int,
                  max_boxes: int) -> Dict:
    """Options under the model config ``node``: every ``num_classes``,
    every ``score_thr`` of a ``test_cfg`` set to 0, and the proposal and
    sampling counts (``nms_pre``, ``max_per_img``, a sampler's ``num``)
    capped at ``max_boxes``."""
    opts = {}
    in_test_cfg = '.test_cfg' in key
    for name, value in _items(node):
        child = f'{key}.{name}'
        if name == 'num_classes':
            opts[child] = num_classes
        elif name == 'score_thr' and in_test_cfg:
            opts[child] = 0.0
        elif (name in ('nms_pre', 'max_per_img') or
              (name == 'num' and key.endswith('sampler'))) and isinstance(
                  value, int) and value > max_boxes:
            opts[child] = max_boxes
        else:
            opts.update(_walk_options(child, value, num_classes, max_boxes))
    return opts


def smoke_cfg_options(cfg: Config,
                      root: str,
                      scale: int = 64,
                      batch_size: int = 2,
                      max_epochs: Optional[int] = 2,
                      max_boxes: int = 32) -> Dict[str, Any]:
    """``--cfg-options`` (as a dict) for a tiny run of ``cfg`` on the
    synthetic COCO data under ``root``.

    Args:
        cfg (Config): The loaded mmdet config (not modified).
        root (str): Folder written by :func:`make_synthetic_coco`.
        scale (int): Image side for every pipeline and batch resize; a
            multiple of 32 suits every detector. Defaults to 64.
        batch_size (int): Training batch size. Defaults to 2.
        max_epochs (int, optional): Training epochs, validated and saved
            after each. None keeps the config's schedule.
        max_boxes (int): Cap on the proposals (``nms_pre``,
            ``max_per_img``), sampled boxes (a sampler's ``num``) and
            detections per image (``max_per_img``) of the model's
            ``train_cfg`` and ``test_cfg``. Defaults to 32.

    Returns:
        dict: Dotted keys (list items by index) to values.
    """
    data = synthetic_coco_cfg_options(root)
    opts: Dict[str, Any] = {}
    for loader in LOADERS:
        opts[f'{loader}.num_workers'] = 0
        opts[f'{loader}.persistent_workers'] = False
        datasets = list(_datasets(cfg, loader))
        inner = datasets[-1][0]
        for name, value in data.items():
            if name.startswith(f'{loader}.dataset.'):
                field = name[len(f'{loader}.dataset.'):]
                if field == 'data_prefix':
                    opts[f'{inner}.data_prefix.img'] = value['img']
                elif field == 'metainfo':
                    opts[f'{inner}.metainfo.classes'] = value['classes']
                else:
                    opts[f'{inner}.{field}'] = value
        for key, dataset in datasets:
            opts.update(
                _scale_options(key, dataset.get('pipeline') or [], scale))
    opts['train_dataloader.batch_size'] = batch_size
    for evaluator in ('val_evaluator', 'test_evaluator'):
        opts[f'{evaluator}.ann_file'] = data[f'{evaluator}.ann_file']
    model = cfg.model
    init_cfg = model.get('backbone', {}).get('init_cfg')
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        opts['model.backbone.init_cfg'] = None
    for i, augment in enumerate(
            model.get('data_preprocessor', {}).get('batch_augments') or []):
        if 'random_size_range' in augment:
            opts['model.data_preprocessor.batch_augments.'
                 f'{i}.random_size_range'] = (scale, scale)
    opts.update(_walk_options('model', model, len(CLASSES), max_boxes))
    opts['default_hooks.logger.interval'] = 1
    if max_epochs is not None:
        opts['train_cfg.max_epochs'] = max_epochs
        opts['train_cfg.val_interval'] = 1
        opts['default_hooks.checkpoint.interval'] = 1
    return opts


def _cli_value(value: Any) -> str:
    """``value`` as mmengine's ``DictAction`` parses it back."""
    if isinstance(value, (list, tuple)):
        items = ','.join(_cli_value(v) for v in value)
        return f'[{items}]' if isinstance(value, list) else f'({items})'
    text = str(value)
    if isinstance(value, str) and (not text or any(c in text
                                                   for c in ' ,()[]\'"=')):
        raise ValueError(f'{value!r} cannot be passed in --cfg-options')
    return text


def to_cli(options: Dict[str, Any]) -> List[str]:
    """``key=value`` arguments for ``--cfg-options``."""
    return [f'{key}={_cli_value(value)}' for key, value in options.items()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description='Print the --cfg-options that run an mmdet config on '
        'synthetic COCO data at a tiny scale (writing the data if needed).')
    parser.add_argument('config')
    parser.add_argument('--root', default='data/synthetic_coco')
    parser.add_argument('--scale', type=int, default=64)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--max-epochs', type=int, default=2)
    args = parser.parse_args()
    if not osp.exists(osp.join(args.root, 'params.json')):
        make_synthetic_coco(args.root)
    cfg = Config.fromfile(args.config)
    print(' '.join(
        to_cli(
            smoke_cfg_options(cfg, args.root, args.scale, args.batch_size,
                              args.max_epochs))))


if __name__ == '__main__':
    main()
