"""Hooks of sema_mm."""
from .switch_ema_hook import SwitchEMAHook

__all__ = ['SwitchEMAHook']
