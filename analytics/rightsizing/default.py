"""Our default strategy, ``rightsizer``: size for the busy hours, keep memory whole, respect trends.

Principles (each a setting below):

* **CPU is compressible, so size for the busy hours, not the busy minutes.** The signal is the peak
  demand of every clock hour (the max of the 5-minute samples; ``cpu_max_vcpus`` in the hourly rollups),
  so the result is the same whether the history comes from raw samples or from rollups. The need is a
  high percentile of those hourly peaks (default P99: the few busiest hours of two weeks are ignored,
  a peak that recurs daily or weekly is not) plus headroom. The headroom grows with how bursty the VM
  is: ``base + burst_factor x (max hourly peak / percentile - 1)``, capped, so a steady VM gets a thin
  margin and a VM whose peaks tower over its busy hours gets a thick one.
* **Memory is not compressible, so never size it below what was used.** The need is the maximum memory
  used over the lookback plus headroom (a percentile would plan an out-of-memory event). Unknown memory
  use is never downsized (shared rule).
* **An idle VM's usage is no evidence of what it needs when it wakes up.** When CPU stays under
  ``idle_cpu_vcpus`` for ``idle_share`` of the time (GCP's idle-VM rule: < 0.03 vCPU for 97 % of the
  time), memory use is treated as unknown (kept whole); the VM should be reviewed as idle instead.
* **Growth blocks a downsize.** A Theil-Sen line through the daily p95 of hourly peaks, tested with
  Mann-Kendall, projected over one more lookback (see :mod:`analytics.trend`).
* **A machine type bundles vCPUs and memory**, so the needs are computed per dimension and the catalogue
  picks the cheapest type that covers both; the shared savings threshold keeps marginal moves out.

Nothing here is fitted per VM; the defaults are round numbers chosen for the fleet, and the same rules
run on stored hourly rollups (``recommend_fleet``) and on raw traces (the backtest).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from analytics.catalogue import MachineType
from analytics.rightsizing.base import (
    DimensionNeed,
    FittingCatalogue,
    Need,
    Recommendation,
    Strategy,
    StrategySettings,
    UsageHistory,
    VmSpecLike,
    memory_need,
    percentile,
)

NAME = "rightsizer"


class RightsizerSettings(StrategySettings):
    """Settings of our default strategy."""

    cpu_percentile: float = Field(
        99.0, gt=0, le=100, description="percentile of hourly CPU peaks to size for (100 = busiest hour)")
    cpu_headroom_fraction: float = Field(0.10, ge=0, le=10, description="CPU headroom for a steady VM")
    cpu_burst_factor: float = Field(
        0.5, ge=0, le=10, description="extra CPU headroom per unit of (max hourly peak / percentile - 1)")
    cpu_headroom_max_fraction: float = Field(
        0.50, ge=0, le=10, description="cap on the total CPU headroom")
    memory_percentile: float = Field(100.0, gt=0, le=100, description="memory statistic (100 = maximum used)")
    memory_headroom_fraction: float = Field(0.15, ge=0, le=10, description="memory headroom over the maximum")
    idle_cpu_vcpus: float = Field(0.03, ge=0, le=64, description="CPU below this (vCPUs) counts as idle")
    idle_share: float = Field(
        0.97, gt=0, le=1, description="share of time under idle_cpu_vcpus that makes a VM idle (memory kept)")
    trend_blocks_downsize: bool = Field(True, description="a growing trend blocks a downsize of that dimension")


def is_idle(history: UsageHistory, settings: RightsizerSettings) -> bool:
    """True when CPU demand stays below the idle threshold for at least ``idle_share`` of the samples."""
    cpu = history.cpu_vcpus[history.valid_cpu()]
    if len(cpu) == 0:
        return False
    return bool(np.mean(cpu < settings.idle_cpu_vcpus) >= settings.idle_share)


def cpu_need(history: UsageHistory, settings: RightsizerSettings) -> DimensionNeed:
    """P(q) of hourly CPU peaks plus burst-sized headroom (vCPUs)."""
    _, peaks, _ = history.hourly()
    observed = percentile(peaks, settings.cpu_percentile)
    peak = float(np.nanmax(peaks)) if len(peaks) else math.nan
    burst = (peak / observed - 1.0) if observed > 0 else 0.0
    headroom = min(settings.cpu_headroom_fraction + settings.cpu_burst_factor * max(burst, 0.0),
                   settings.cpu_headroom_max_fraction)
    headroom = max(headroom, settings.cpu_headroom_fraction)
    return DimensionNeed(
        value=observed * (1.0 + headroom),
        statistic=f"p{settings.cpu_percentile:g} of hourly CPU peaks",
        observed=observed,
        headroom_fraction=headroom,
        peak=peak,
    )


def estimate(history: UsageHistory, settings: RightsizerSettings) -> Need:
    """CPU need from hourly peaks, memory need from the maximum used (None when unknown or idle)."""
    if is_idle(history, settings):
        return Need(cpu=cpu_need(history, settings), memory=None, memory_note=(
            f"idle (CPU < {settings.idle_cpu_vcpus:g} vCPU for {settings.idle_share:.0%} of the time): memory "
            "use while idle is no evidence of need"))
    return Need(cpu=cpu_need(history, settings), memory=memory_need(history, settings))


STRATEGY = Strategy(
    NAME, "ours: P99 of hourly CPU peaks + burst-sized headroom, memory max + 15 %, trend-aware",
    RightsizerSettings, estimate,
)


def recommend(
    history: UsageHistory,
    spec: VmSpecLike,
    settings: RightsizerSettings | None = None,
    *,
    catalogue: FittingCatalogue,
    current_type: MachineType | None = None,
) -> Recommendation:
    """Recommend a size for one VM with our default strategy."""
    return STRATEGY.recommend(history, spec, settings, catalogue=catalogue, current_type=current_type)
