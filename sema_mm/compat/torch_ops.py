"""Fused multi-tensor operations on every supported torch (2.0 to newest).

sema_mm's averaging uses torch's private multi-tensor kernels
(``torch._foreach_*``): one kernel launch per list instead of one per
tensor. Torch releases differ in which of them exist and which arguments
they take, e.g. ``_foreach_copy_`` is missing in 2.0, ``_foreach_clone`` in
2.11, and ``_foreach_norm`` takes ``dtype=`` only from 2.2 on.

Each operation below is resolved once, when this module is imported, by
trying the fused kernel on a tiny tensor (a capability check, never a
version string): where the kernel works it is used, otherwise a per-tensor
loop that gives the same result. :data:`FUSED` records which path each
operation takes; ``python -m sema_mm.compat`` prints it.

All functions take lists of tensors and are meant to run under
``torch.no_grad()``.
"""
import math
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor


def _works(call: Callable[[], object]) -> bool:
    """Whether ``call`` runs on this torch."""
    try:
        call()
    except (AttributeError, TypeError, RuntimeError, NotImplementedError):
        return False
    return True


def _tiny(dtype: torch.dtype = torch.float32) -> List[Tensor]:
    return [torch.ones(2, dtype=dtype), torch.ones(3, dtype=dtype)]


#: Operation -> whether this torch runs it as a fused kernel.
FUSED: Dict[str, bool] = {
    'copy_': _works(lambda: torch._foreach_copy_(_tiny(), _tiny())),
    'clone': _works(lambda: torch._foreach_clone(_tiny())),
    'lerp_': _works(lambda: torch._foreach_lerp_(_tiny(), _tiny(), 0.5)),
    # torch 2.0 has no CPU lerp kernel for float16.
    'lerp_half_cpu': _works(lambda: torch._foreach_lerp_(
        _tiny(torch.half), _tiny(torch.half), 0.5)) and _works(
            lambda: torch.ones(2, dtype=torch.half).lerp_(
                torch.ones(2, dtype=torch.half), 0.5)),
    'sub': _works(lambda: torch._foreach_sub(_tiny(), _tiny())),
    'norm': _works(lambda: torch._foreach_norm(_tiny(), 2.)),
    'norm_inf': _works(lambda: torch._foreach_norm(_tiny(), math.inf)),
    'norm_dtype': _works(
        lambda: torch._foreach_norm(_tiny(), 2., dtype=torch.float64)),
}


def foreach_copy_(dst: List[Tensor], src: List[Tensor],
                  non_blocking: bool = False) -> None:
    """``d.copy_(s)`` for every pair."""
    if FUSED['copy_']:
        torch._foreach_copy_(dst, src, non_blocking=non_blocking)
    else:
        for d, s in zip(dst, src):
            d.copy_(s, non_blocking=non_blocking)


def foreach_clone(tensors: List[Tensor]) -> List[Tensor]:
    """A copy of every tensor."""
    if FUSED['clone']:
        return list(torch._foreach_clone(tensors))
    return [t.clone() for t in tensors]


def foreach_lerp_(dst: List[Tensor], src: List[Tensor],
                  weight: float) -> None:
    """``d = d + weight * (s - d)`` for every pair (``torch.lerp``)."""
    if (dst and dst[0].dtype == torch.half and dst[0].device.type == 'cpu'
            and not FUSED['lerp_half_cpu']):
        torch._foreach_add_(dst, foreach_sub(src, dst), alpha=weight)
    elif FUSED['lerp_']:
        torch._foreach_lerp_(dst, src, weight)
    else:
        for d, s in zip(dst, src):
            d.lerp_(s, weight)


def foreach_sub(a: List[Tensor], b: List[Tensor]) -> List[Tensor]:
    """``x - y`` for every pair (new tensors)."""
    if FUSED['sub']:
        return list(torch._foreach_sub(a, b))
    return [x - y for x, y in zip(a, b)]


def foreach_norm(tensors: List[Tensor],
                 ord: float = 2.,
                 dtype: Optional[torch.dtype] = None) -> List[Tensor]:
    """The ``ord``-norm of every tensor (as 0-d tensors), accumulated and
    returned in ``dtype`` when given."""
    fused = FUSED['norm_inf'] if math.isinf(ord) else FUSED['norm']
    if fused and dtype is None:
        return list(torch._foreach_norm(tensors, ord))
    if fused and FUSED['norm_dtype']:
        return list(torch._foreach_norm(tensors, ord, dtype=dtype))
    return [torch.linalg.vector_norm(t, ord, dtype=dtype) for t in tensors]

