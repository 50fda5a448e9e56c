"""Find the parts of a model that an EMA hook must leave alone.

Self-teaching SSL models (MoCo v2 ``encoder_k``, BYOL ``target_net``, MoCo v3
``momentum_encoder`` in mmpretrain and mmselfsup) hold their momentum teacher
as an mmengine averaged model inside the model. That teacher already is an EMA
of the online encoder, updated by the model itself; averaging it again or
switching an average of it back would corrupt it.
"""
from typing import List

from mmengine.model import BaseAveragedModel
from torch import nn


def find_momentum_teachers(model: nn.Module) -> List[str]:
    """Names of the outermost submodules of ``model`` that are averaged
    models (momentum teachers)."""
    names: List[str] = []
    for name, module in model.named_modules():
        if name and isinstance(module, BaseAveragedModel) and not any(
                name.startswith(n + '.') for n in names):
            names.append(name)
    return names
