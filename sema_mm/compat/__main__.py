"""``python -m sema_mm.compat``: which fused kernels this torch has."""
import torch

from .torch_ops import FUSED

print(f'torch {torch.__version__}')
for name, fused in FUSED.items():
    print(f'  {name:<14} {"fused" if fused else "per-tensor fallback"}')
