"""``FlexibleRunner`` strategies that mmengine lacks: :class:`FSDP2Strategy`
(PyTorch's ``fully_shard``), registered in mmengine's ``STRATEGIES`` when
sema_mm is imported."""
from .fsdp2 import FSDP2Strategy

__all__ = ['FSDP2Strategy']
