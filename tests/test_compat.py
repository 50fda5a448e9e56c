"""The torch capability layer and safe checkpoint loading on every torch.

Each fused operation of :mod:`sema_mm.compat.torch_ops` is compared with
its per-tensor fallback (the path older torch releases take), and the
restricted unpickler that torch < 2.4 loads checkpoints with is run here
too, on a real mmengine checkpoint and on a file that would run code.
"""
import math
import os
import pickle

import pytest
import torch

from sema_mm.compat import torch_ops
from sema_mm.compat.checkpoint_safety import RESTRICTED_PICKLE
from sema_mm.ema.tensor_pairs import TensorPairs
from tests.test_checkpoint_safety import RunsCode
from tests.utils import make_runner

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def tensors(dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g).to(dtype)
            for shape in ((3, 5), (7, ), (2, 2, 4), ())]


@pytest.fixture(params=[True, False], ids=['fused', 'fallback'])
def path(request, monkeypatch):
    """Run the test with every operation fused where this torch can, and
    again with every operation on its per-tensor fallback."""
    if not request.param:
        for name in torch_ops.FUSED:
            monkeypatch.setitem(torch_ops.FUSED, name, False)
    return request.param


@pytest.mark.parametrize('dtype', DTYPES)
def test_ops_match_plain_torch(path, dtype):
    a, b = tensors(dtype, 0), tensors(dtype, 1)
    # In float32 (torch 2.0 has no float16 lerp on CPU), then rounded.
    expected = [x.float().lerp(y.float(), 0.3).to(dtype)
                for x, y in zip(a, b)]
    torch_ops.foreach_lerp_(a, b, 0.3)
    atol = 1e-6 if dtype == torch.float32 else 1e-2
    for x, y in zip(a, expected):
        torch.testing.assert_close(x, y, rtol=0, atol=atol)
    clones = torch_ops.foreach_clone(a)
    assert all(c.data_ptr() != x.data_ptr() and torch.equal(c, x)
               for c, x in zip(clones, a))
    torch_ops.foreach_copy_(a, b)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    for ord in (2., math.inf):
        for dtype_arg in (None, torch.float32):
            norms = torch_ops.foreach_norm(b, ord, dtype=dtype_arg)
            for n, t in zip(norms, b):
                ref = torch.linalg.vector_norm(t, ord, dtype=dtype_arg)
                assert n.dtype == ref.dtype
                torch.testing.assert_close(n, ref, rtol=1e-3, atol=1e-6)


def test_pairs_across_dtypes(path):
    """An EMA kept in float64 of a float32 model stages the model's tensors
    (the path an EMA on another device takes) and stays exact."""
    model = torch.nn.Linear(4, 3)
    ema = torch.nn.Linear(4, 3).double()
    pairs = TensorPairs(ema, model, ['weight', 'bias'])
    pairs.copy_to_averaged()
    with torch.no_grad():
        model.weight.add_(1)
    expected = ema.weight.detach().clone().lerp_(model.weight.double(), 0.1)
    pairs.lerp_(0.1)
    torch.testing.assert_close(ema.weight.detach(), expected, rtol=0,
                               atol=1e-12)
    pairs.swap()
    torch.testing.assert_close(model.weight.detach(),
                               expected.float(), rtol=0, atol=1e-6)


def test_restricted_unpickler_loads_mmengine_checkpoints(tmp_path):
    """The torch < 2.4 path, here on any torch: a checkpoint written by the
    Runner (log history, optimizer and scheduler state) loads."""
    make_runner(tmp_path, train_cfg=dict(by_epoch=True, max_epochs=1,
                                         val_interval=1)).train()
    ckpt = torch.load(str(tmp_path / 'epoch_1.pth'), weights_only=False,
                      pickle_module=RESTRICTED_PICKLE)
    assert {'state_dict', 'ema_state_dict', 'optimizer', 'message_hub',
            'param_schedulers', 'meta'} <= set(ckpt)


def test_restricted_unpickler_refuses_code(tmp_path):
    target = str(tmp_path / 'created_by_checkpoint')
    path = str(tmp_path / 'bad.pth')
    torch.save(dict(state_dict={}, meta=RunsCode(target)), path)
    with pytest.raises(pickle.UnpicklingError, match='mkdir'):
        torch.load(path, weights_only=False, pickle_module=RESTRICTED_PICKLE)
    assert not os.path.exists(target)
