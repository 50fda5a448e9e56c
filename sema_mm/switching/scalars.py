"""SEMA's scalars in mmengine's logs and visualizers.

At every switch ``SwitchEMAHook`` records:

* ``sema/switch_distance``: ``||model - EMA|| / ||model||`` just before the
  switch (global 2-norms over the switched tensors): how far the switch
  moves the model;
* ``sema/switches``: the number of switches so far;
* ``sema/skipped_updates``: EMA updates skipped so far for non-finite
  weights;
* ``sema/epoch``: training progress in epochs at the switch (epoch-based
  loops only; ``1.5`` is the middle of the second epoch).

They are put into the runner's message hub (where other hooks can read
them) and written to the visualizer at the switch's step, the number of
iterations done, so every backend gets them: ``vis_data/scalars.json``,
TensorBoard, W&B. They are written directly because a switch at the end of
an epoch comes after the epoch's last logged iteration, which ``LoggerHook``
would never report. Computing the distance costs one fused reduction per
switch and nothing per iteration.
"""
from typing import Dict, Optional

PREFIX = 'sema/'


def record_switch(runner, step: int, distance: float, switches: int,
                  skipped_updates: int,
                  epoch: Optional[float] = None) -> Dict[str, float]:
    """Record the scalars of one switch; return them.

    Args:
        runner (Runner): The runner.
        step (int): Iterations done at the switch.
        distance (float): The relative switch distance.
        switches (int): Switches so far, this one included.
        skipped_updates (int): Skipped EMA updates so far.
        epoch (float, optional): Progress in epochs, for epoch-based loops.
    """
    scalars = {
        f'{PREFIX}switch_distance': distance,
        f'{PREFIX}switches': switches,
        f'{PREFIX}skipped_updates': skipped_updates,
    }
    if epoch is not None:
        scalars[f'{PREFIX}epoch'] = epoch
    for key, value in scalars.items():
        runner.message_hub.update_scalar(key, value)
    runner.visualizer.add_scalars(scalars, step=step)
    return scalars
