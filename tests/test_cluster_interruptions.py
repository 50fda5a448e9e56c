"""Files on a shared cluster: the modes of the files a run writes and
``--resume`` without a readable checkpoint.

Real Runners on the toy task of :mod:`tests.toy`.
"""
import os
import stat

import pytest
from mmengine.config import Config
from mmengine.fileio import dump

from sema_mm.cli.resume import resolve_auto_resume
from tests.utils import make_runner


# ------------------------------------------------------------ file modes
@pytest.mark.parametrize('umask, mode', [(0o022, 0o644), (0o027, 0o640)],
                         ids=['umask022', 'umask027'])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    """A Runner's checkpoint, ``last_checkpoint`` and a file written with
    ``mmengine.dump`` (as ``tools/test.py --out`` writes predictions) get
    ``0o666`` less the umask, as with plain mmengine, not ``0o600``; no
    temporary file is left."""
    old = os.umask(umask)
    try:
        runner = make_runner(tmp_path, train_cfg=dict(
            by_epoch=True, max_epochs=1, val_interval=1))
        runner.train()
        dump([dict(pred=1)], str(tmp_path / 'preds.pkl'))
    finally:
        os.umask(old)
    for name in ('epoch_1.pth', 'last_checkpoint', 'preds.pkl'):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert not list(tmp_path.glob('.*.tmp'))


# --------------------------------------------------------- resume check
def test_resume_without_a_readable_checkpoint_is_a_clear_error(tmp_path):
    """Every checkpoint of the work dir is empty or cut: ``--resume auto``
    names each one with the reason and stops before any training (the cut
    checkpoint of a real run, with a readable one to fall back to:
    tests/test_tools.py)."""
    (tmp_path / 'epoch_1.pth').write_bytes(b'')
    (tmp_path / 'epoch_2.pth').write_bytes(b'PK\x03\x04' + bytes(100))
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))
    cfg = Config(dict(resume=True, load_from=None, work_dir=str(tmp_path)))
    with pytest.raises(RuntimeError) as error:
        resolve_auto_resume(cfg)
    message = str(error.value)
    assert f'no readable checkpoint in {tmp_path}' in message
    assert f'{tmp_path / "epoch_1.pth"}: it is empty' in message
    assert f'{tmp_path / "epoch_2.pth"}: it is cut short' in message
    assert cfg.load_from is None
