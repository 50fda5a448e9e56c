"""Small data sets that sema_mm writes itself, so that demos and tests need
no download.

- ``sema_mm.datasets.digits``: scikit-learn's 8x8 digits as an mmpretrain
  image folder (:func:`make_digits`).
- ``sema_mm.datasets.synthetic_coco``: a COCO-format detection set of random
  shapes (``sema_mm.datasets.detection_smoke``: the settings that run the
  detection configs on it).
- ``sema_mm.datasets.digits_config``: a child config that runs any
  classification, pre-training or evaluation config on the digits (tiny
  architectures, 32x32 pipelines, CPU).

Each module is imported on first use, so that ``python -m
sema_mm.datasets.<module>`` runs it only once (no runpy warning).
"""

__all__ = ['make_digits']


def __getattr__(name: str):
    """Import :func:`make_digits` lazily."""
    if name == 'make_digits':
        from .digits import make_digits
        return make_digits
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
