"""What every evaluation config of ``configs/selfsup_mmselfsup`` adds to the
upstream mmselfsup 1.0.0 benchmark it inherits (listed first in its
``_base_``, this file second).

The upstream benchmarks are written for mmselfsup's own tree with the
default scope ``mmcls`` (mmcls 1.0.0rc6). Inherited through ``mmselfsup::``,
mmengine tags their classifier, datasets, metrics, loop and collate function
with ``_scope_='mmselfsup'``, where mmcls's classes are not registered;
``MMSelfSupBenchmarkRunner`` (``sema_mm/compat/mmselfsup.py``) builds them in
the default scope again, and leaves the rest as upstream has it.

Each evaluation config also initialises the backbone from a pre-training
checkpoint, as the mmpretrain configs do (upstream leaves ``init_cfg`` to the
user)::

    --cfg-options model.backbone.init_cfg.checkpoint=<ckpt>

The pre-training checkpoint's ``state_dict`` holds the EMA weights (for
SwitchEMAHook: the weights after the last switch).
"""
# mmselfsup_compat: see sema_mm/compat/mmselfsup.py
custom_imports = dict(
    imports=['sema_mm', 'sema_mm.compat.mmselfsup'],
    allow_failed_imports=False)
runner_type = 'MMSelfSupBenchmarkRunner'
