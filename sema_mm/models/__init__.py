"""Averaged models of sema_mm."""
from .fused_ema import FusedEMA

__all__ = ['FusedEMA']
