"""Messages for a device the machine lacks, for unknown hook arguments, and
the pull-back estimate of a model's own momentum teacher."""
import logging
import os

import pytest
import torch

from tests.utils import LogCapture, Probe, make_runner, sema_hook


@pytest.mark.skipif(torch.cuda.is_available(), reason='a GPU is present')
def test_cuda_device_without_gpu_fails_at_build(tmp_path):
    with pytest.raises(ValueError, match=r"device='cuda', but no CUDA GPU"):
        make_runner(tmp_path, custom_hooks=[
            dict(type='SwitchEMAHook', momentum=0.2, device='cuda')])
    with pytest.raises(ValueError, match="device='gpu0' is not a torch"):
        make_runner(tmp_path, custom_hooks=[
            dict(type='SwitchEMAHook', momentum=0.2, device='gpu0')])


def test_unknown_argument_lists_only_the_unknown(tmp_path):
    probe = Probe()
    runner = make_runner(tmp_path, hooks=[probe], custom_hooks=[
        dict(type='SwitchEMAHook', momentum=0.2, exclude=('head', ),
             warmup_iter=10)])
    with pytest.raises(ValueError) as info:
        runner.train()
    message = str(info.value)
    unknown, _, valid = message.partition('Valid arguments:')
    assert "does not accept the arguments ['warmup_iter']" in unknown
    assert 'momentum' not in unknown and 'exclude' not in unknown
    assert "'momentum'" in valid and "'exclude'" in valid
    assert "'warmup_iters'" in valid
    assert probe.batches == []
    assert not any(f.endswith('.pth') for f in os.listdir(tmp_path))


def test_teacher_auto_reports_the_pullback(tmp_path):
    """The model's own teacher (momentum 0.02, 8 updates per epoch): each
    switch pulls back by 0.98 ** 8 = 0.85, warned about before training
    with the teacher's momentum."""
    runner = make_runner(
        tmp_path, model=dict(type='ToyMomentumModel', teacher_momentum=0.02),
        custom_hooks=[dict(type='SwitchEMAHook', momentum=0.2)],
        train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1))
    logs = LogCapture(runner)
    runner.train()
    assert sema_hook(runner).averager.teacher_name == 'encoder_k'
    warnings = logs.messages(logging.WARNING)
    hits = [m for m in warnings if 'EMA updates per switch' in m]
    assert len(hits) == 1, warnings
    assert "8 EMA updates per switch with the momentum of the model's " \
        'teacher 0.02' in hits[0]
    assert f'weight {0.98 ** 8:.3g}' in hits[0]
    assert "Use the momentum of the model's teacher >= 0.083 " in hits[0]
