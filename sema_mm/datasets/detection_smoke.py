"""Run any mmdet COCO config at a tiny scale on the synthetic COCO data.

:func:`smoke_cfg_options` reads a config and returns the ``--cfg-options``
that point its loaders, evaluators and heads (``num_classes``) at the data
of :mod:`sema_mm.datasets.synthetic_coco`, inside dataset wrappers such as
``RepeatDataset`` and ``MultiImageMixDataset`` too, and shrink what makes a
run slow: every image scale of the pipelines and of YOLOX's batch resizing,
the batch size, loader workers, the pretrained backbone (no download), and
the score threshold of the test output, so that an untrained model still
gives the COCO metric something to evaluate::

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


def _zero_score_thr(key: str, test_cfg: Any) -> Dict:
    """Options setting every ``score_thr`` under ``test_cfg`` to 0."""
    if not isinstance(test_cfg, dict):
        return {}
    opts = {f'{key}.score_thr': 0.0} if 'score_thr' in test_cfg else {}
    for name, value in test_cfg.items():
        opts.update(_zero_score_thr(f'{key}.{name}', value))
    return opts


def _num_classes(key: str, node: Any, num_classes: int) -> Dict:
    """Options setting every ``num_classes`` under ``node`` (a model config,
    lists of heads included) to ``num_classes``."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return {}
    opts = {}
    for name, value in items:
        if name == 'num_classes':
            opts[f'{key}.num_classes'] = num_classes
        else:
            opts.update(_num_classes(f'{key}.{name}', value, num_classes))
    return opts


def smoke_cfg_options(cfg: Config,
                      root: str,
                      scale: int = 64,
                      batch_size: int = 2,
                      max_epochs: Optional[int] = 2) -> Dict[str, Any]:
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
    opts.update(_num_classes('model', model, len(CLASSES)))
    opts.update(_zero_score_thr('model.test_cfg', model.get('test_cfg')))
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
