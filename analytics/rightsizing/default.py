"""Our default strategy, ``rightsizer``: size CPU for the busy hours that come back, keep memory whole.

Principles (each a field of ``RightsizerSettings`` in :mod:`analytics.rightsizing.settings`):

* **CPU is compressible; size it for demand that recurs, not for the busiest minute.** The signal is the
  peak demand of every clock hour (the max of the 5-minute samples; ``cpu_max_vcpus`` in the hourly
  rollups), so the result is the same whether the history comes from raw samples or from rollups. Each
  UTC day contributes its peak hour, and the need is a high percentile of those daily peaks (default P90:
  a level reached on at least one day in ten, i.e. between the 2nd and 3rd busiest day of two weeks)
  plus 15 % headroom. Daily and weekly cycles (the batch job every night, the Monday report) set the
  size; a one-off spike on a single day does not. Burstiness is priced in because peaks, not means,
  are measured.
* **Memory is not compressible; never size it below what was used.** The need is the maximum memory
  used over the lookback plus 15 % (a percentile would plan an out-of-memory event). Unknown memory
  use is never downsized (shared rule).
* **Growth blocks a downsize.** A Theil-Sen line through the daily p95 of hourly peaks, tested with
  Mann-Kendall, projected over one more lookback; if the projection plus headroom would outgrow the
  proposed type, that dimension keeps its allocation (see :mod:`analytics.trend` and ``decide``).
* **A machine type bundles vCPUs and memory**, so the needs are computed per dimension and the catalogue
  picks the cheapest type covering both; the shared savings threshold keeps marginal moves out.

Nothing is fitted per VM; the defaults are round numbers. On the Bitbrains backtest the result is the
same for P85-P93 at 15 % headroom and for 10-15 % headroom at P90 (20 % at P93 buys a CPU overrun of
0.08 % instead of 1.2 % for about 1.3 points of savings). The same rules run on stored hourly rollups
(``recommend_fleet``) and on raw traces (the backtest).
"""

from __future__ import annotations

import math

import numpy as np

from analytics.rightsizing.base import (
    SECONDS_PER_DAY,
    DimensionNeed,
    Need,
    Strategy,
    UsageHistory,
    group_starts,
    memory_need,
    percentile,
)
from analytics.rightsizing.settings import RightsizerSettings

NAME = "rightsizer"


def daily_peaks(history: UsageHistory) -> tuple[np.ndarray, np.ndarray]:
    """Peak hourly CPU demand of each UTC day with data: (day number since the epoch, vCPUs)."""
    valid = history.valid_cpu()
    ts = history.timestamps_s[valid]
    if len(ts) == 0:
        return np.empty(0), np.empty(0)
    # the peak of the day's hourly peaks is the peak of the day's samples
    peaks = history.cpu_peaks[valid]
    days = np.floor(ts / SECONDS_PER_DAY)
    starts = group_starts(days)
    return days[starts], np.fmax.reduceat(peaks, starts)  # fmax skips a missing peak


def cpu_need(history: UsageHistory, settings: RightsizerSettings) -> DimensionNeed:
    """P(q) of the daily peak-hour CPU demand plus headroom (vCPUs)."""
    _, peaks = daily_peaks(history)
    observed = percentile(peaks, settings.cpu_percentile)
    return DimensionNeed(
        value=observed * (1.0 + settings.cpu_headroom_fraction),
        statistic=f"p{settings.cpu_percentile:g} of daily peak-hour CPU demand",
        observed=observed,
        headroom_fraction=settings.cpu_headroom_fraction,
        peak=float(np.nanmax(peaks)) if len(peaks) else math.nan,
    )


def estimate(history: UsageHistory, settings: RightsizerSettings) -> Need:
    """CPU need from recurring daily peaks, memory need from the maximum used (None when unknown)."""
    return Need(cpu=cpu_need(history, settings), memory=memory_need(history, settings))


STRATEGY = Strategy(
    NAME, "ours: P90 of daily peak-hour CPU + 15 %, memory max + 15 %, growth blocks downsizing",
    RightsizerSettings, estimate,
)

