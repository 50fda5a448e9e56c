"""Version of sema_mm."""
__version__ = '0.1.0'
