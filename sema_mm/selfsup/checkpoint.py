"""The backbone of a pre-training checkpoint.

A pre-training checkpoint written with ``SwitchEMAHook`` or ``EMAHook``
holds the EMA in its ``state_dict`` (for SwitchEMAHook: the weights after the
last switch, which the online model equals). The evaluation configs load its
backbone with mmengine's ``Pretrained`` initialisation::

    --cfg-options model.backbone.init_cfg.checkpoint=<ckpt> \\
        model.backbone.init_cfg.prefix=backbone.

:func:`backbone_state_dict` returns exactly those tensors, e.g. to check
what an evaluation will start from.
"""
from typing import Dict

import torch

from ..compat.checkpoint_safety import load_from_local_safe


def backbone_state_dict(checkpoint: str,
                        prefix: str = 'backbone.') -> Dict[str, torch.Tensor]:
    """Tensors under ``prefix`` in the checkpoint's ``state_dict``, with the
    prefix removed (what ``init_cfg=dict(type='Pretrained',
    prefix=prefix)`` loads).

    Args:
        checkpoint (str): Path of a checkpoint written by the Runner.
        prefix (str): Prefix of the backbone's keys. Defaults to
            ``'backbone.'``.
    """
    ckpt = load_from_local_safe(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    found = {k[len(prefix):]: v for k, v in state.items()
             if k.startswith(prefix)}
    if not found:
        raise KeyError(f'{checkpoint} has no tensors under {prefix!r}.')
    return found
