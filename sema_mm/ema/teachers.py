"""Find the momentum teachers inside self-teaching models.

Self-teaching SSL models (MoCo v2 ``encoder_k``, BYOL ``target_net``, MoCo v3
``momentum_encoder`` in mmpretrain and mmselfsup) hold their teacher as an
mmengine averaged model inside the model, updated by the model itself: it
already is an EMA of the online encoder. Averaging it again, or switching an
average of it back, would corrupt it; SEMA for these models instead switches
the teacher into the online modules it follows (the paper's Sec. 4.2).

The teacher's module is a copy of online modules: of one top-level child
(``ExponentialMovingAverage(self.backbone)``) or of several
(``ExponentialMovingAverage(nn.Sequential(self.backbone, self.neck))``, as
mmpretrain and mmselfsup build them). :func:`teacher_pairs` recovers that
correspondence from the module types and tensor names and shapes.
"""
from typing import List, Optional, Tuple

from mmengine.model import BaseAveragedModel
from torch import nn

from .tensor_pairs import named_tensors


def find_momentum_teachers(model: nn.Module) -> List[str]:
    """Names of the outermost submodules of ``model`` that are averaged
    models (momentum teachers)."""
    names: List[str] = []
    for name, module in model.named_modules():
        if name and isinstance(module, BaseAveragedModel) and not any(
                name.startswith(n + '.') for n in names):
            names.append(name)
    return names


def _signature(module: nn.Module) -> tuple:
    """Type and (name, shape) of every tensor: equal for a deep copy."""
    return (type(module), tuple(
        (n, tuple(t.shape)) for n, t in named_tensors(module).items()))


def _param_names(module: nn.Module) -> List[str]:
    return [n for n, p in module.named_parameters() if p.is_floating_point()]


def teacher_pairs(model: nn.Module,
                  teacher: str) -> Optional[List[Tuple[str, str]]]:
    """(teacher, online) parameter name pairs, or None if the teacher's
    module is not a copy of top-level children of ``model``.

    Args:
        model (nn.Module): The self-teaching model.
        teacher (str): Name of its averaged-model submodule, e.g.
            ``'encoder_k'``.
    """
    copied = model.get_submodule(teacher).module
    online = [(name, _signature(child))
              for name, child in model.named_children() if name != teacher]
    parts = [('', copied)]
    if isinstance(copied, nn.Sequential) and not any(
            sig == _signature(copied) for _, sig in online):
        parts = list(copied.named_children())
    pairs: List[Tuple[str, str]] = []
    used = set()
    for part_name, part in parts:
        match = next((name for name, sig in online
                      if sig == _signature(part) and name not in used), None)
        if match is None:
            return None
        used.add(match)
        prefix = f'{teacher}.module.' + (f'{part_name}.' if part_name else '')
        pairs += [(prefix + n, f'{match}.{n}') for n in _param_names(part)]
    return pairs
