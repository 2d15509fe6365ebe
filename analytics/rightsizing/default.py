"""Our strategy, ``rightsizer``: the anchors' CPU rules, memory from the spread of each VM's daily peaks.

Profiles (:data:`analytics.rightsizing.settings.PROFILES`; ``balanced`` is the default). Every profile
sizes memory the same way and differs in the CPU statistic:

* **memory** (all profiles): the maximum used plus a headroom fitted per VM from the spread of its daily
  peaks, at most 15 % (``memory_peak_risk_pct`` 3: one fleet margin, calibrated so that 3 % of held-out
  training days peak above the need; :mod:`analytics.rightsizing.peak_spread`). A VM whose daily peaks
  are steady gets 5 % (``memory_peak_min_headroom_fraction``: never sized to exactly what it used), one
  whose peaks wander keeps KRR's 15 %; never below the maximum used (memory is not compressible).
  Machine types come in memory steps, so this is where the savings are.
* **balanced** takes the AWS Compute Optimizer rule for CPU as it is (P99.5 of interval demand + 20 %).
  Trimming memory must not cost CPU: a type bundles vCPUs with memory, and the type holding AWS's max +
  20 % often carries more vCPUs than the CPU rule asked for; the vCPU floor
  (``vcpu_floor_memory_headroom_fraction``) keeps those (up to the VM's own allocation: a type bundling more
  vCPUs than the VM has gives no floor above it). So on any trace, per VM, balanced gets at least the vCPUs
  of the AWS anchor's type, or the VM's allocation where that is fewer, and costs no more than it (its needs
  are no larger in either dimension): savings >= aws and CPU overrun <= aws hold by construction (CPU where
  a VM's demand stays within its own allocation); memory overrun is no worse unless a VM's memory later
  peaks between its fitted need and 1.2x its old maximum.
* **conservative** sizes CPU for the largest demand seen (P100) + 15 %: the low-risk end of the frontier.
  (At 20 % one dev-trace VM's 3.34 vCPU maximum crossed to an 8-vCPU type with no overrun avoided, and
  KRR at P100 beat it at 21 training days; 5-15 % give the same points at every split.)
* **aggressive** uses KRR's CPU statistic (P95 of interval demand, no headroom). Its vCPU floor is KRR's
  memory buffer (15 %) rather than AWS's 20 %: each profile's floor keeps the vCPUs of the anchor whose
  CPU rule it takes, so aggressive never gets fewer vCPUs than KRR's type (up to the VM's allocation) and
  costs no more.

Measured on the Bitbrains dev trace at 7/10/14/21 training days (docs/backtest.md, ``python -m
bench.frontier_table``): no anchor sweep point beats any profile; balanced weakly dominates AWS and saves
+0.31/+1.01/+1.58/+1.22 points more (+0.31/+1.22/+1.79/+1.32 without the 5 % floor). Two points
more at aws's overruns are out of reach at 7 and 10 days
for any rule that keeps memory at or above the maximum used: even choosing every type knowing the
evaluation window, such a rule gains at most +1.53/+1.76 points there (the hindsight bound); one that also
keeps aws's vCPUs as balanced does (its guarantee) at most +1.33/+1.66/+2.15/+1.85, under 2 at 21 days too.

Two rules of earlier versions stay available as settings but are in no profile, because the backtest
frontier showed they buy no less overrun for the savings they cost: the P90 of the daily peak-hour
demand (``daily_peak_percentile``) and "a growing trend blocks a downsize" (``trend_blocks_downsize``;
at 21 training days it cost 15 points of savings for no change in CPU overrun).

With ``cpu_risk_pct`` / ``memory_risk_pct`` set (no profile sets them; ``--sweep``'s ``rightsizer-risk``
curve and the flags of the same names do) a dimension is sized instead by per-VM headroom calibrated on the
fleet (:mod:`analytics.rightsizing.calibrated`): its own base level plus a fleet margin in units of its own
spread. For CPU it cannot gain on AWS's rule at AWS's risk on the dev trace (with AWS's memory, choosing
vCPUs in hindsight gains at most 0.11 points), and at 7-14 training days its memory trimming adds
overruns, so the profiles keep the anchors' CPU statistics. ``memory_peak_risk_pct = None`` gives the
uniform memory headroom of earlier versions (maximum used + ``memory_headroom_fraction``).

Unknown memory use is never downsized (shared rule). The same rules run on stored hourly rollups and on
raw traces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from analytics.rightsizing import peak_spread
from analytics.rightsizing.base import SECONDS_PER_DAY, UsageHistory, group_starts, percentile, percentile_estimate
from analytics.rightsizing.calibrated import (
    CPU_BASE_PERCENTILE,
    MEMORY_BASE_PERCENTILE,
    calibrate,
    dimension_need,
    shape,
)
from analytics.rightsizing.decide import Strategy
from analytics.rightsizing.needs import DimensionNeed, Need
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


def daily_peak_need(history: UsageHistory, settings: RightsizerSettings) -> DimensionNeed:
    """P(q) of the daily peak-hour CPU demand plus headroom (vCPUs), q = ``daily_peak_percentile``."""
    _, peaks = daily_peaks(history)
    observed = percentile(peaks, settings.daily_peak_percentile)
    return DimensionNeed(
        value=observed * (1.0 + settings.daily_peak_headroom_fraction),
        statistic=f"p{settings.daily_peak_percentile:g} of daily peak-hour CPU demand",
        observed=observed,
        headroom_fraction=settings.daily_peak_headroom_fraction,
        peak=float(np.nanmax(peaks)) if len(peaks) else math.nan,
    )


def estimate(history: UsageHistory, settings: RightsizerSettings) -> Need:
    """CPU and memory needs: calibrated per-VM headroom where a risk target is set, else the percentile rule.

    With ``cpu_risk_pct`` (``memory_risk_pct``) set the dimension is sized by
    :mod:`analytics.rightsizing.calibrated` at the settings' fleet margin; a history estimated without a
    fleet calibration (no margin yet) is calibrated on itself. Otherwise CPU is the interval percentile
    (and the daily peaks when set) plus headroom, memory the maximum plus headroom; then, with
    ``vcpu_floor_memory_headroom_fraction`` > 0, the need also names the memory (max used x (1 + that
    headroom)) whose cheapest type's vCPUs are kept; ``decide`` applies it against the catalogue.
    """
    need = percentile_estimate(history, settings)
    cpu, memory = need.cpu, need.memory
    if settings.daily_peak_percentile > 0:
        peak_need = daily_peak_need(history, settings)
        if peak_need.value > cpu.value:
            cpu = peak_need
    floor = None
    if settings.cpu_risk_pct is None and memory is not None and settings.vcpu_floor_memory_headroom_fraction > 0:
        floor = memory.observed * (1.0 + settings.vcpu_floor_memory_headroom_fraction)
    if memory is not None and settings.memory_peak_risk_pct is not None and settings.memory_risk_pct is None:
        memory = _peak_spread_memory(history, memory, settings)
    if settings.cpu_risk_pct is None and settings.memory_risk_pct is None:
        return Need(cpu=cpu, memory=memory, cpu_floor_memory_bytes=floor)
    if ((settings.cpu_risk_pct is not None and settings.cpu_margin is None)
            or (settings.memory_risk_pct is not None and settings.memory_margin is None)):
        settings = calibrate([history], settings)
    if settings.cpu_risk_pct is not None and settings.cpu_margin is not None:
        q = settings.cpu_base_percentile or CPU_BASE_PERCENTILE
        s = shape(history.cpu_vcpus, base_percentile=q)
        if s is not None:
            cpu = dimension_need(s, settings.cpu_margin, settings.cpu_risk_pct, what="CPU",
                                 statistic=f"p{q:g} of CPU demand", peak=cpu.peak)
    if memory is not None and settings.memory_risk_pct is not None and settings.memory_margin is not None:
        q = settings.memory_base_percentile or MEMORY_BASE_PERCENTILE
        s = shape(history.memory_used_bytes, base_percentile=q)
        if s is not None:
            memory = dimension_need(s, settings.memory_margin, settings.memory_risk_pct, what="memory",
                                    statistic="max of memory used" if q >= 100 else f"p{q:g} of memory used",
                                    peak=memory.peak)
    return Need(cpu=cpu, memory=memory, cpu_floor_memory_bytes=floor)


def _peak_spread_memory(history: UsageHistory, memory: DimensionNeed, settings: RightsizerSettings) -> DimensionNeed:
    """Memory sized from the spread of the window's daily peaks (:mod:`analytics.rightsizing.peak_spread`);
    a history estimated without a fleet pass is calibrated on itself."""
    risk = settings.memory_peak_risk_pct or 0.0
    margin = settings.memory_peak_margin
    if margin is None:
        margin = peak_spread.calibrate_margin([history], risk, settings.lookback_days)
    if margin is None:  # too few days to calibrate: the percentile rule
        return memory
    maxima = peak_spread.daily_maxima(history.timestamps_s, history.memory_used_bytes)
    return peak_spread.memory_need(peak_spread.peak_spread(maxima), memory.peak, margin, risk,
                                   settings.memory_headroom_fraction, settings.memory_peak_min_headroom_fraction)


def calibrate_fleet(histories: Sequence[UsageHistory], settings: RightsizerSettings) -> RightsizerSettings:
    """The fleet pass: ``settings`` with the margins fitted on every VM's training window."""
    settings = calibrate(histories, settings)
    if (settings.memory_peak_risk_pct is not None and settings.memory_peak_margin is None
            and settings.memory_risk_pct is None):  # the calibrated memory rule replaces the daily-peak one
        margin = peak_spread.calibrate_margin(histories, settings.memory_peak_risk_pct, settings.lookback_days)
        if margin is not None:
            settings = settings.model_copy(update={"memory_peak_margin": margin})
    return settings


STRATEGY = Strategy(
    NAME, ("ours (balanced): CPU P99.5 + 20 %, memory max + 5-15 % from the spread of daily peaks, never fewer "
           "vCPUs than the aws anchor"),
    RightsizerSettings, estimate, calibrate_fleet,
)
