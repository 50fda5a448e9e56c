"""When and how SEMA switches: the schedule, the pull-back guard, what
happens to normalisation statistics, and the cross-rank check."""
from .norm_stats import NORM_STATS_POLICIES, NormStatsPolicy
from .pullback import log_pullback, momentum_for, pullback_weight
from .schedule import SwitchSchedule

__all__ = [
    'SwitchSchedule', 'NORM_STATS_POLICIES', 'NormStatsPolicy',
    'log_pullback', 'momentum_for', 'pullback_weight'
]
