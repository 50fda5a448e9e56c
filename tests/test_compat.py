"""The torch capability layer, safe checkpoint loading on every torch, the
changes sema_mm makes to mmengine, and the package's import structure.

Each fused operation of :mod:`sema_mm.compat.torch_ops` is compared with
its per-tensor fallback (the path older torch releases take), and the
restricted unpickler that torch < 2.4 loads checkpoints with is run here
too, on a real mmengine checkpoint and on a file that would run code.
The optional changes to mmengine are made only for the mmengine versions
they were written for and can be kept out by name. No module of sema_mm
takes part in an import cycle (imports inside functions included), and the
product modules import nothing of the comparison and study packages.
"""
import ast
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Dict, Set

import pytest
import torch

import sema_mm
from sema_mm.compat import mmengine_needs_changes, torch_ops
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


def test_mmengine_changes_follow_the_version():
    assert mmengine_needs_changes('0.10.7')
    assert mmengine_needs_changes('0.10.0')
    assert not mmengine_needs_changes('0.11.0')
    assert not mmengine_needs_changes('1.0.0')


KEPT_OUT = r'''
from mmengine.fileio.backends import backends
import sema_mm
print('BACKEND', backends['local'].__name__)
from mmengine.runner.checkpoint import CheckpointLoader
print('LOADER', CheckpointLoader._schemes[''].__name__)
'''


@pytest.mark.parametrize('keep', ['', 'atomic_checkpoints'])
def test_mmengine_changes_can_be_kept_out(keep):
    """``SEMA_MM_KEEP_MMENGINE`` keeps the atomic file backend out; safe
    loading stays on either way."""
    env = dict(os.environ, SEMA_MM_KEEP_MMENGINE=keep)
    out = subprocess.run([sys.executable, '-c', KEPT_OUT], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=300).stdout
    backend = 'LocalBackend' if keep else 'AtomicLocalBackend'
    assert f'BACKEND {backend}\n' in out, out[-2000:]
    assert 'LOADER load_from_local_safe' in out, out[-2000:]


#: Packages of sema_mm that the product (the hook and what it needs, the
#: tools' helpers, the data sets) must not import.
LAB_PACKAGES = ('sema_mm.comparison', 'sema_mm.studies')


def import_graph() -> Dict[str, Set[str]]:
    """Module name -> the sema_mm modules it imports, at module level or
    inside functions, parsed with ``ast``. ``from package import name``
    counts as importing the submodule ``package.name`` when there is one,
    else ``package``; packages a module merely lies in are not counted."""
    root = Path(sema_mm.__file__).parent
    files = {}
    for path in root.rglob('*.py'):
        parts = list(path.relative_to(root.parent).with_suffix('').parts)
        is_package = parts[-1] == '__init__'
        name = '.'.join(parts[:-1] if is_package else parts)
        files[name] = (path, name if is_package else name.rpartition('.')[0])
    graph = {}
    for name, (path, package) in files.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level:
                    parent = package.split('.')
                    parent = parent[:len(parent) - node.level + 1]
                    base = '.'.join(parent + ([base] if base else []))
                for alias in node.names:
                    sub = f'{base}.{alias.name}'
                    imported.add(sub if sub in files else base)
        graph[name] = {m for m in imported if m in files and m != name}
    return graph


def test_no_import_cycles_and_the_product_apart_from_the_lab():
    graph = import_graph()
    assert 'sema_mm.ema.factory' in graph['sema_mm.hooks.switch_ema_hook']
    # Depth-first search for a cycle (a module met again on the path).
    done: Set[str] = set()

    def visit(module, path):
        assert module not in path, 'import cycle: ' + ' -> '.join(
            path[path.index(module):] + [module])
        if module in done:
            return
        for other in sorted(graph[module]):
            visit(other, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    lab = {m for m in graph if m.startswith(LAB_PACKAGES)}
    assert {'sema_mm.comparison.runner', 'sema_mm.studies.toy'} <= lab
    for module in sorted(set(graph) - lab):
        assert not graph[module] & lab, (module, graph[module] & lab)
