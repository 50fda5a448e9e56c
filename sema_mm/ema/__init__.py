"""The EMA itself: the fused averaged model, its tensor pairs, the
strategies the hook delegates to (a separate EMA or the model's momentum
teacher), and whether the EMA equals the model."""
from .averagers import (
    Averager,
    ModelTeacher,
    OwnEMA,
    OwnFusedEMA,
    build_averager,
)
from .fused_ema import FusedEMA
from .sync_state import EMAState, ModelSync
from .tensor_pairs import TensorPairs

__all__ = [
    'FusedEMA', 'TensorPairs', 'Averager', 'OwnEMA', 'OwnFusedEMA',
    'ModelTeacher', 'build_averager', 'EMAState', 'ModelSync'
]
