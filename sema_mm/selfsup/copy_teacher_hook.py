"""CopyTeacherHook: a self-teaching model without a momentum teacher.

MoCo v2 (``encoder_k``), BYOL (``target_net``) and MoCo v3
(``momentum_encoder``) update their teacher inside the model's own
``loss()``: ``teacher.update_parameters(nn.Sequential(backbone, neck))``,
right before the teacher encodes the keys / targets. The "Basic" variant of
the SEMA paper (Table 4) is the same method without a momentum teacher: the
teacher *is* the online encoder (momentum 1 in mmengine's convention, decay
0 in the paper's and mmselfsup's), with the gradient stopped.

No momentum value says that in mmpretrain or mmselfsup: mmengine's
``ExponentialMovingAverage`` refuses ``momentum=1``, and BYOL's and MoCo v3's
``CosineEMA`` anneals its momentum from ``base_momentum`` to
``end_momentum=0`` (mmpretrain) or 1 (mmselfsup), which the models do not
expose. Every mmengine averaged model, however, *copies* the source in its
first update (``steps == 0``). This hook zeroes the teacher's ``steps``
before every training iteration, so each of the model's own updates is an
exact copy of the online parameters (and, as always, of its buffers); the
rest of the model's update (queue, shuffling, forward) is untouched.
"""
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ..ema.teachers import find_momentum_teachers


@HOOKS.register_module()
class CopyTeacherHook(Hook):
    """Make every momentum teacher of the model copy the online encoder.

    Args:
        teachers (list[str], optional): Names of the teacher submodules.
            Defaults to None: every averaged-model submodule of the model
            (``encoder_k``, ``target_net``, ``momentum_encoder``).
    """

    priority = 'NORMAL'

    def __init__(self, teachers: Optional[List[str]] = None) -> None:
        self.teachers = teachers
        self._modules = []

    def before_train(self, runner) -> None:
        """Find the teachers; fail if the model has none."""
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        names = self.teachers or find_momentum_teachers(model)
        if not names:
            raise ValueError(
                'CopyTeacherHook: the model has no momentum teacher (no '
                'averaged-model submodule); remove the hook.')
        self._modules = [model.get_submodule(n) for n in names]
        for name, module in zip(names, self._modules):
            if not hasattr(module, 'steps'):
                raise ValueError(
                    f'CopyTeacherHook: `{name}` is not an mmengine averaged '
                    'model (it has no `steps` counter).')
        print_log(
            f'CopyTeacherHook: {", ".join(names)} copies the online encoder '
            'at every update (no momentum teacher).', logger='current')

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        """Reset the counters: the next update takes the copy branch."""
        for module in self._modules:
            module.steps.zero_()
