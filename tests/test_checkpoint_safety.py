"""mmengine checkpoints load with torch.load(weights_only=True); anything
else is refused with a clear message and nothing from the file runs."""
import os
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint

from tests.utils import make_runner


class RunsCode:

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path, ))


class ReadsAttribute:

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


def test_plain_mmengine_checkpoint_loads(tmp_path):
    """A checkpoint written by mmengine's own EMAHook (log history with
    HistoryBuffer, numpy arrays) loads and resumes."""
    ema = [dict(type='EMAHook', momentum=0.2)]
    cfg = dict(train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1),
               custom_hooks=ema)
    make_runner(tmp_path, **cfg).train()
    ckpt = _load_checkpoint(str(tmp_path / 'epoch_1.pth'))
    assert isinstance(ckpt['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)
    cfg['train_cfg'] = dict(by_epoch=True, max_epochs=2, val_interval=1)
    runner = make_runner(tmp_path, resume=True, **cfg)
    runner.train()
    assert runner.epoch == 2


def test_code_in_checkpoint_is_refused(tmp_path):
    target = str(tmp_path / 'created_by_checkpoint')
    path = str(tmp_path / 'bad.pth')
    torch.save(dict(state_dict={}, meta=RunsCode(target)), path)
    with pytest.raises(pickle.UnpicklingError) as err:
        _load_checkpoint(path)
    msg = str(err.value)
    assert 'Refusing to load' in msg and 'mkdir' in msg
    assert 'add_safe_globals' in msg
    assert not os.path.exists(target)


def test_getattr_is_restricted_to_history_buffer_methods(tmp_path):
    path = str(tmp_path / 'bad.pth')
    torch.save(dict(x=ReadsAttribute()), path)
    with pytest.raises(pickle.UnpicklingError, match='not allowed'):
        _load_checkpoint(path)
