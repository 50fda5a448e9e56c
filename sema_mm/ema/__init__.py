"""The EMA itself: the fused averaged model, its tensor pairs, its momentum
schedule and update rule, its overlapped updates when held on the host
(``host_offload``), the strategies the hook delegates to (a separate
EMA, the model's momentum teacher, the EMA of a sharded model's shards), how
they are built (and their arguments checked), how they go into checkpoints,
the EMA copy's buffers that follow the model's, and whether the EMA equals
the model."""
from .averagers import Averager, ModelTeacher, OwnEMA, OwnFusedEMA
from .factory import build_averager
from .fused_ema import FusedEMA
from .momentum import MomentumSchedule, ema_step
from .sync_state import EMAState, ModelSync
from .tensor_pairs import TensorPairs

__all__ = [
    'FusedEMA', 'TensorPairs', 'Averager', 'OwnEMA', 'OwnFusedEMA',
    'ModelTeacher', 'build_averager', 'MomentumSchedule', 'ema_step',
    'EMAState', 'ModelSync'
]
