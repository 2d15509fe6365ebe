"""Anchor: Robusta KRR's ``simple`` strategy.

CPU: the 95th percentile of usage with no headroom (``cpu_percentile = 95``); memory: the peak plus a
15 % buffer (``memory_buffer_percentage = 15``). Source: robusta-dev/krr,
``robusta_krr/strategies/simple.py`` (``SimpleStrategySettings``), over its default history of 336 h
(14 days). KRR also needs ``points_required = 100`` points per resource; our shared minimum of 30 h of
data over 3 days is stricter for 5-minute data and is applied instead.
"""

from __future__ import annotations

from analytics.catalogue import MachineType
from analytics.rightsizing.base import (
    DimensionNeed,
    FittingCatalogue,
    Need,
    Recommendation,
    Strategy,
    UsageHistory,
    VmSpecLike,
    memory_need,
    percentile,
)
from analytics.rightsizing.settings import KrrSettings

NAME = "krr"


def estimate(history: UsageHistory, settings: KrrSettings) -> Need:
    """CPU need = P95 of interval demand; memory need = max used x 1.15 (bytes)."""
    cpu = history.cpu_vcpus
    observed = percentile(cpu, settings.cpu_percentile)
    return Need(
        cpu=DimensionNeed(
            value=observed * (1.0 + settings.cpu_headroom_fraction),
            statistic=f"p{settings.cpu_percentile:g} of CPU demand",
            observed=observed,
            headroom_fraction=settings.cpu_headroom_fraction,
            peak=float(history.cpu_peaks[history.valid_cpu()].max()),
        ),
        memory=memory_need(history, settings),
    )


STRATEGY = Strategy(NAME, "Robusta KRR simple strategy (CPU P95, memory max + 15 %)", KrrSettings, estimate)


def recommend(
    history: UsageHistory,
    spec: VmSpecLike,
    settings: KrrSettings | None = None,
    *,
    catalogue: FittingCatalogue,
    current_type: MachineType | None = None,
) -> Recommendation:
    """Recommend a size for one VM with KRR's simple strategy."""
    return STRATEGY.recommend(history, spec, settings, catalogue=catalogue, current_type=current_type)
