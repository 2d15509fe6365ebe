"""Anchor: Robusta KRR's ``simple`` strategy.

CPU: the 95th percentile of usage with no headroom (``cpu_percentile = 95``); memory: the peak plus a
15 % buffer (``memory_buffer_percentage = 15``). Source: robusta-dev/krr,
``robusta_krr/strategies/simple.py`` (``SimpleStrategySettings``), over its default history of 336 h
(14 days). KRR also needs ``points_required = 100`` points per resource; our shared minimum of 30 h of
data over 3 days is stricter for 5-minute data and is applied instead.
"""

from __future__ import annotations

from analytics.rightsizing.base import percentile_estimate
from analytics.rightsizing.decide import Strategy
from analytics.rightsizing.settings import KrrSettings

NAME = "krr"


#: CPU need = percentile of interval demand x (1 + headroom); memory need = max used x (1 + headroom).
estimate = percentile_estimate

STRATEGY = Strategy(NAME, "Robusta KRR simple strategy (CPU P95, memory max + 15 %)", KrrSettings, estimate)

