"""The options of mmdet's and mmpretrain's ``tools/test.py`` beyond the
common ones, for sema_mm's ``tools/test.py``.

* ``--show``, ``--show-dir``, ``--wait-time`` (and mmpretrain's
  ``--interval``): turn on the config's visualization hook, as upstream
  (mmdet: ``DetVisualizationHook`` draws and writes under
  ``<work_dir>/<timestamp>/<show_dir>``; mmpretrain: ``VisualizationHook``
  writes to ``show_dir``);
* ``--tta``: test-time augmentation with the config's ``tta_model`` and
  ``tta_pipeline``, or upstream's defaults (flip TTA: mmdet's
  ``DetTTAModel`` with NMS, mmpretrain's ``AverageClsScoreTTA``);
* ``--out-item {metrics,pred}`` (mmpretrain's): what ``--out`` dumps;
* ``--amp`` (mmpretrain's): test in fp16; ``--no-pin-memory``.

An option the config's codebase has no counterpart for fails with a message
before the model is built, and so does mmpretrain's ``--tta`` with
``--show``/``--show-dir`` (its visualization hook cannot draw TTA batches).
"""
import argparse
from copy import deepcopy
from typing import Dict

from mmengine.config import Config, ConfigDict

from .codebase import Codebase

#: The TTA model each codebase's ``tools/test.py`` uses by default.
DEFAULT_TTA_MODELS: Dict[str, dict] = {
    'mmdet':
    dict(
        type='DetTTAModel',
        tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5),
                     max_per_img=100)),
    'mmpretrain':
    dict(type='mmpretrain.AverageClsScoreTTA'),
}

#: Codebases whose ``tools/test.py`` visualizes predictions.
VISUALIZING = ('mmdet', 'mmpretrain')


def add_test_view_args(parser: argparse.ArgumentParser) -> None:
    """Add the options of the module docstring to ``parser``."""
    parser.add_argument(
        '--out-item', choices=['metrics', 'pred'],
        help='with --out: dump the metrics or the predictions (default)')
    parser.add_argument('--show', action='store_true',
                        help='show the predictions in a window')
    parser.add_argument(
        '--show-dir',
        help='write the painted predictions to this directory (mmdet: '
        'under work_dir/<timestamp>/)')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='seconds each shown image stays (default 2)')
    parser.add_argument('--interval', type=int, default=1,
                        help='mmpretrain: visualize every this many samples')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation: the config\'s '
                        'tta_model and tta_pipeline, else flip TTA')
    parser.add_argument('--amp', action='store_true',
                        help='test with automatic mixed precision (fp16)')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='no pinned memory in the test dataloader')


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f'tools/test.py: {message}')


def _visualize(cfg: Config, args: argparse.Namespace,
               codebase: Codebase) -> None:
    """Turn on the config's visualization hook as its codebase does."""
    _require(
        codebase.name in VISUALIZING,
        f'--show/--show-dir need an mmdet or mmpretrain config '
        f"(default_scope={codebase.name!r} has no visualization hook).")
    hook = (cfg.get('default_hooks') or {}).get('visualization')
    _require(
        hook is not None,
        'the config has no `default_hooks.visualization`; add '
        "visualization=dict(type='DetVisualizationHook') (mmdet) or "
        "dict(type='VisualizationHook') (mmpretrain) to default_hooks.")
    if codebase.name == 'mmdet':
        hook['draw'] = True
        if args.show:
            hook['show'] = True
            hook['wait_time'] = args.wait_time
        if args.show_dir:
            hook['test_out_dir'] = args.show_dir
    else:
        hook.update(enable=True, show=args.show, wait_time=args.wait_time,
                    out_dir=args.show_dir, interval=args.interval)


def _flip_pipeline(pipeline: list, codebase: Codebase) -> list:
    """Upstream's default TTA pipeline: ``pipeline`` with its packing step
    replaced by a flip / no-flip ``TestTimeAug``."""
    tta = deepcopy(pipeline)
    pack = pipeline[-1]
    if codebase.name == 'mmdet':
        pack = dict(type='PackDetInputs',
                    meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                               'scale_factor', 'flip', 'flip_direction'))
    tta[-1] = dict(
        type='TestTimeAug',
        transforms=[[dict(type='RandomFlip', prob=1.),
                     dict(type='RandomFlip', prob=0.)], [pack]])
    return tta


def _test_time_augmentation(cfg: Config, codebase: Codebase) -> None:
    """Wrap the model in the TTA model and use the TTA pipeline."""
    _require(
        'tta_model' in cfg or codebase.name in DEFAULT_TTA_MODELS,
        f'--tta: the config has no `tta_model` and default_scope='
        f'{codebase.name!r} has no default one; add tta_model and '
        'tta_pipeline to the config.')
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:  # dataset wrappers
        dataset = dataset['dataset']
    if 'tta_model' not in cfg:
        cfg.tta_model = deepcopy(DEFAULT_TTA_MODELS[codebase.name])
    if 'tta_pipeline' not in cfg:
        cfg.tta_pipeline = _flip_pipeline(dataset.pipeline, codebase)
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    dataset.pipeline = cfg.tta_pipeline


def merge_test_view_args(cfg: Config, args: argparse.Namespace,
                         codebase: Codebase) -> None:
    """Apply the options of the module docstring to ``cfg`` in place
    (after :func:`~sema_mm.cli.merge_test_args`).

    Raises:
        ValueError: For an option the codebase (or the config) cannot
            serve, or ``--out-item`` without ``--out``.
    """
    _require(args.out_item is None or args.out is not None,
             '--out-item needs --out FILE.')
    if args.show or args.show_dir:
        _require(
            not (args.tta and codebase.name == 'mmpretrain'),
            "--tta with --show/--show-dir: mmpretrain's VisualizationHook "
            'cannot draw test-time-augmented batches; run them apart.')
        _visualize(cfg, args, codebase)
    if args.tta:
        _test_time_augmentation(cfg, codebase)
    if args.amp:
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
    if args.no_pin_memory and cfg.get('test_dataloader') is not None:
        cfg.test_dataloader['pin_memory'] = False
