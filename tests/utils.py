"""Shared helpers for the tests: build a real Runner on the toy task, watch
it with a probe hook, and capture what it logs."""
import copy
import logging
import uuid
from typing import Dict, List

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

import sema_mm  # noqa: F401  (registers SwitchEMAHook, FusedEMA)
from tests.toy import toy_config


def make_runner(work_dir, hooks=(), **overrides) -> Runner:
    """A Runner for the toy task; ``hooks`` are extra hook objects."""
    cfg = toy_config(str(work_dir), **overrides)
    cfg.setdefault('experiment_name', f'toy_{uuid.uuid4().hex[:8]}')
    cfg['custom_hooks'] = list(cfg['custom_hooks']) + list(hooks)
    return Runner(**cfg)


def sema_hook(runner: Runner):
    """The runner's SwitchEMAHook."""
    return next(h for h in runner.hooks
                if type(h).__name__ == 'SwitchEMAHook')


def unwrap(model):
    return model.module if is_model_wrapper(model) else model


def params(model) -> Dict[str, torch.Tensor]:
    """Detached clones of the parameters of ``model``."""
    return {
        k: v.detach().clone()
        for k, v in unwrap(model).named_parameters()
    }


class Probe(Hook):
    """Record the batches, the initial weights and the weights at the hook
    points the tests look at. ``priority`` sets where it runs relative to
    SwitchEMAHook (NORMAL)."""

    def __init__(self, priority: str = 'LOWEST') -> None:
        self.priority = priority
        self.init_state = None
        self.batches: List[List[dict]] = []
        self.after_iter: List[Dict] = []
        self.after_epoch: List[Dict] = []
        self.ema_after_epoch: List[Dict] = []
        self.seen_in_val: List[Dict] = []
        self.seen_after_val: List[Dict] = []
        self.switches_after_iter: List[int] = []

    def before_train(self, runner) -> None:
        self.init_state = copy.deepcopy(unwrap(runner.model).state_dict())

    def before_train_epoch(self, runner) -> None:
        self.batches.append([])

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.batches[-1].append(copy.deepcopy(data_batch))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.after_iter.append(params(runner.model))
        self.switches_after_iter.append(sema_hook(runner).num_switches)

    def after_train_epoch(self, runner) -> None:
        self.after_epoch.append(params(runner.model))
        ema = sema_hook(runner).ema_model.module
        self.ema_after_epoch.append(params(ema))

    def before_val_epoch(self, runner) -> None:
        self.seen_in_val.append(params(runner.model))

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.seen_after_val.append(params(runner.model))


class LogCapture(logging.Handler):
    """Collect the messages of a runner's logger."""

    def __init__(self, runner: Runner) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: List[logging.LogRecord] = []
        runner.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int = logging.DEBUG) -> List[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]


def assert_close(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor],
                 atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)


def assert_equal(a: Dict[str, torch.Tensor],
                 b: Dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
