"""The data half of :func:`analytics.rightsizing.base.decide` for a whole fleet at once.

``decide`` first cuts one VM's history to its lookback, counts the data (samples, covered hours, span) and
asks the strategy for its need; then it applies the shared rules. On a fleet of 50,000 VMs the first half
is tens of numpy calls per VM. :func:`fleet_needs` does it for every VM in a handful of calls over the
fleet's sorted columns and hands ``decide`` one :class:`PreparedNeed` per VM; the rules stay per VM.

Results are the per-VM path's, bit for bit: groups of equal length are stacked into 2-D arrays and
reduced row by row with the same numpy operations (a row's sum is the same pairwise sum as the 1-D call;
percentiles use :func:`analytics.rightsizing.base.percentile`'s own interpolation), never regrouped sums
such as ``np.bincount`` whose rounding differs. Strategies: those whose estimate is
:func:`~analytics.rightsizing.base.percentile_estimate` (``aws``, ``krr``) and ours by the percentile rule
without the daily-peak rule (calibrated rules once the fleet pass set their margins, the peak-spread memory
rule included); anything else returns ``None`` and runs the per-VM path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from analytics.rightsizing import peak_spread
from analytics.rightsizing.base import SECONDS_PER_DAY, SECONDS_PER_HOUR, percentile_estimate
from analytics.rightsizing.calibrated import (
    CENTRE_PERCENTILE,
    CPU_BASE_PERCENTILE,
    MEMORY_BASE_PERCENTILE,
    SPREAD_FLOOR,
    Shape,
    dimension_need,
)
from analytics.rightsizing.decide import Strategy
from analytics.rightsizing.default import estimate as ours
from analytics.rightsizing.needs import DimensionNeed, Need, PreparedNeed
from analytics.rightsizing.settings import RightsizerSettings, StrategySettings

#: The history step of the fleet path (hourly rollups), seconds.
INTERVAL_S = 3600.0


@dataclass(frozen=True, slots=True)
class FleetColumns:
    """A fleet's hourly history as arrays sorted by (VM code, time): ``codes`` 0..n-1 ascending."""

    n: int
    codes: np.ndarray
    ts_s: np.ndarray
    cpu_p95: np.ndarray
    cpu_max: np.ndarray
    mem_max: np.ndarray
    running_s: np.ndarray


def supports(strategy: Strategy, settings: StrategySettings) -> bool:
    """True when :func:`fleet_needs` gives this strategy's needs (see the module doc)."""
    if strategy.estimate is percentile_estimate:
        return True
    return (strategy.estimate is ours and isinstance(settings, RightsizerSettings)
            and settings.daily_peak_percentile <= 0
            and (settings.memory_peak_risk_pct is None or settings.memory_peak_margin is not None
                 or settings.memory_risk_pct is not None)  # the calibrated memory rule replaces it
            and (settings.cpu_risk_pct is None or settings.cpu_margin is not None)
            and (settings.memory_risk_pct is None or settings.memory_margin is not None))


def _shapes(codes: np.ndarray, values: np.ndarray, n: int, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Per group: the base percentile ``q`` and the median, as :func:`calibrated.shape` computes them."""
    return (stacked(codes, values, n, _percentile_rows(q)),
            stacked(codes, values, n, _percentile_rows(CENTRE_PERCENTILE)))


def _calibrated(base: float, centre: float, margin: float, risk_pct: float, *, what: str, statistic: str,
                peak: float) -> DimensionNeed:
    """As the per-VM estimate sizes a calibrated dimension from its shape."""
    shape = Shape(base, centre, (base - centre) + SPREAD_FLOOR * base)
    return dimension_need(shape, margin, risk_pct, what=what, statistic=statistic, peak=peak)


def fleet_needs(cols: FleetColumns, strategy: Strategy, settings: StrategySettings, *, end_s: float
                ) -> list[PreparedNeed] | None:
    """Per VM code: what ``decide`` measures on ``history.window(settings.lookback_days)`` (end ``end_s``).

    None when the strategy is not supported (:func:`supports`).
    """
    if not supports(strategy, settings):
        return None
    n = cols.n
    in_window = cols.ts_s >= float(end_s) - settings.lookback_days * SECONDS_PER_DAY
    valid = _rows(in_window & ~np.isnan(cols.cpu_p95))
    codes = cols.codes[valid]
    samples = np.bincount(codes, minlength=n)
    covered = np.clip(np.nan_to_num(cols.running_s[valid], nan=INTERVAL_S), 0.0, INTERVAL_S)
    coverage = stacked(codes, covered, n, lambda block: block.sum(axis=1))
    span = _span_days(codes, cols.ts_s[valid], samples)
    cpu = stacked(codes, cols.cpu_p95[valid], n, _percentile_rows(settings.cpu_percentile))
    peak = group_max_or_nan(codes, cols.cpu_max[valid], n)
    known = _rows(in_window & ~np.isnan(cols.mem_max))
    mem_codes, mem = cols.codes[known], cols.mem_max[known]
    mem_peak = group_max_or_nan(mem_codes, mem, n)
    q_mem = settings.memory_percentile
    mem_observed = mem_peak if q_mem >= 100 else stacked(mem_codes, mem, n, _percentile_rows(q_mem))
    has_memory = np.bincount(mem_codes, minlength=n) > 0
    floor_fraction = getattr(settings, "vcpu_floor_memory_headroom_fraction", 0.0)
    statistic = f"p{settings.cpu_percentile:g} of CPU demand"  # one string for every VM
    cal = settings if isinstance(settings, RightsizerSettings) else None
    cpu_cal = cal is not None and cal.cpu_risk_pct is not None and cal.cpu_margin is not None
    mem_cal = cal is not None and cal.memory_risk_pct is not None and cal.memory_margin is not None
    nan = np.full(n, np.nan)
    cpu_q = (cal.cpu_base_percentile or CPU_BASE_PERCENTILE) if cal is not None else 0.0
    mem_q = (cal.memory_base_percentile or MEMORY_BASE_PERCENTILE) if cal is not None else 0.0
    cpu_base, cpu_centre = _shapes(codes, cols.cpu_p95[valid], n, cpu_q) if cpu_cal else (nan, nan)
    mem_base, mem_centre = _shapes(mem_codes, mem, n, mem_q) if mem_cal else (nan, nan)
    peaks = (cal is not None and cal.memory_risk_pct is None and cal.memory_peak_risk_pct is not None
             and cal.memory_peak_margin is not None)
    spreads = _peak_spreads(mem_codes, cols.ts_s[known], mem, n) if peaks else [None] * n
    out: list[PreparedNeed] = []
    for k, cov, sp, obs, pk, mo, mp, hm, cb, cc, mb, mc, ps in zip(
            samples.tolist(), coverage.tolist(), span.tolist(), cpu.tolist(), peak.tolist(),
            mem_observed.tolist(), mem_peak.tolist(), has_memory.tolist(), cpu_base.tolist(),
            cpu_centre.tolist(), mem_base.tolist(), mem_centre.tolist(), spreads, strict=True):
        if k == 0:
            out.append(PreparedNeed(0, 0.0, 0.0, None))
            continue
        memory = _memory_need(mo, mp, settings) if hm else None
        floor = None
        if memory is not None and floor_fraction > 0 and not cpu_cal:
            floor = memory.observed * (1.0 + floor_fraction)
        if cal is not None and peaks and memory is not None:
            memory = peak_spread.memory_need(ps, mp, cal.memory_peak_margin or 0.0, cal.memory_peak_risk_pct or 0.0,
                                             cal.memory_headroom_fraction, cal.memory_peak_min_headroom_fraction)
        if cal is not None and mem_cal and memory is not None:
            memory = _calibrated(mb, mc, cal.memory_margin or 0.0, cal.memory_risk_pct or 0.0, what="memory",
                                 statistic="max of memory used" if mem_q >= 100 else f"p{mem_q:g} of memory used",
                                 peak=mp)
        if cal is not None and cpu_cal:
            cpu_need = _calibrated(cb, cc, cal.cpu_margin or 0.0, cal.cpu_risk_pct or 0.0, what="CPU",
                                   statistic=f"p{cpu_q:g} of CPU demand", peak=pk)
        else:
            cpu_need = DimensionNeed(value=obs * (1.0 + settings.cpu_headroom_fraction),
                                     statistic=statistic, observed=obs,
                                     headroom_fraction=settings.cpu_headroom_fraction, peak=pk)
        out.append(PreparedNeed(k, cov / SECONDS_PER_HOUR, sp, Need(cpu=cpu_need, memory=memory,
                                                                   cpu_floor_memory_bytes=floor)))
    return out


def _peak_spreads(codes: np.ndarray, ts_s: np.ndarray, values: np.ndarray, n: int
                  ) -> list[peak_spread.PeakSpread | None]:
    """Per group: :func:`peak_spread.peak_spread` of its daily maxima (``values`` without NaN, ``codes``
    ascending, times ascending within a group), as the per-VM estimate computes it from its window."""
    if len(codes) == 0:
        return [None] * n
    days = np.floor(ts_s / SECONDS_PER_DAY)
    starts = np.flatnonzero(np.r_[True, (codes[1:] != codes[:-1]) | (days[1:] != days[:-1])])
    maxima = np.maximum.reduceat(values, starts)
    day_codes = codes[starts]
    quartiles = [stacked(day_codes, maxima, n, _np_percentile_rows(q)) for q in (25.0, 50.0, 75.0)]
    counts = np.bincount(day_codes, minlength=n)
    out: list[peak_spread.PeakSpread | None] = []
    for days_n, q25, median, q75 in zip(counts.tolist(), *(q.tolist() for q in quartiles), strict=True):
        if days_n < peak_spread.MIN_DAYS or not median > 0:
            out.append(None)
        else:
            out.append(peak_spread.PeakSpread(median, max(q75 - q25, peak_spread.SPREAD_FLOOR * median), days_n))
    return out


def _np_percentile_rows(q: float) -> Callable[[np.ndarray], np.ndarray]:
    """Row-wise ``np.percentile`` (linear), as the per-VM :func:`peak_spread.peak_spread` calls it."""

    def rows(block: np.ndarray) -> np.ndarray:
        value: np.ndarray = np.percentile(block, q, axis=1)
        return value

    return rows


def _rows(mask: np.ndarray) -> slice | np.ndarray:
    """``mask`` as an index: every row (a slice, so picking copies nothing) when all are set."""
    return slice(None) if mask.all() else mask


def _memory_need(observed: float, peak: float, settings: StrategySettings) -> DimensionNeed:
    """As :func:`analytics.rightsizing.base.memory_need` from the group's statistic and maximum."""
    q = settings.memory_percentile
    return DimensionNeed(
        value=observed * (1.0 + settings.memory_headroom_fraction),
        statistic="max of memory used" if q >= 100 else f"p{q:g} of memory used",
        observed=observed,
        headroom_fraction=settings.memory_headroom_fraction,
        peak=peak,
    )


def _span_days(codes: np.ndarray, ts_s: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Days from each group's first to its last timestamp plus one interval (0 without samples)."""
    span = np.zeros(len(samples))
    has = samples > 0
    if not has.any():
        return span
    ends = np.cumsum(samples)
    first = ts_s[(ends - samples)[has]]
    last = ts_s[ends[has] - 1]
    span[has] = (last - first + INTERVAL_S) / SECONDS_PER_DAY
    return span


def stacked(codes: np.ndarray, values: np.ndarray, n: int, rows: Callable[[np.ndarray], np.ndarray]
            ) -> np.ndarray:
    """Per group: ``rows`` applied to a 2-D block of the groups of one length (NaN for empty groups).

    ``codes`` (0..n-1) ascending, ``values`` aligned. ``rows`` maps a (groups, length) block to one value
    per row; reducing a row of a C-ordered block runs the same loop as the 1-D call on that group.
    """
    counts = np.bincount(codes, minlength=n)
    starts = np.cumsum(counts) - counts
    out = np.full(n, np.nan)
    lengths = np.unique(counts[counts > 0]).tolist()
    if len(lengths) == 1 and len(codes) == n * lengths[0]:  # every group, one length: the rows as they lie
        return rows(np.ascontiguousarray(values, dtype=np.float64).reshape(n, lengths[0]))
    for length in lengths:
        members = np.flatnonzero(counts == length)
        block = values[starts[members, None] + np.arange(length)[None, :]]
        out[members] = rows(np.ascontiguousarray(block, dtype=np.float64))
    return out


def _percentile_rows(q: float) -> Callable[[np.ndarray], np.ndarray]:
    """Row-wise :func:`analytics.rightsizing.base.percentile` (no NaN in the rows)."""

    def rows(block: np.ndarray) -> np.ndarray:
        length = block.shape[1]
        if q >= 100.0:
            result: np.ndarray = block.max(axis=1)
            return result
        pos = q / 100.0 * (length - 1)
        lo = int(pos)
        hi = min(lo + 1, length - 1)
        # only the two order statistics read are placed: the same values a full sort puts there
        ordered = np.partition(block, sorted({lo, hi}), axis=1)
        low = ordered[:, lo]
        value: np.ndarray = low + (ordered[:, hi] - low) * (pos - lo)
        return value

    return rows


def group_max_or_nan(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per group: the largest non-NaN value, NaN when there is none (``codes`` 0..n-1 ascending)."""
    out = np.full(n, np.nan)
    if len(codes) == 0:
        return out
    counts = np.bincount(codes, minlength=n)
    present = np.flatnonzero(counts)
    starts = (np.cumsum(counts) - counts)[present]
    missing = np.isnan(values)
    if not missing.any():
        out[present] = np.maximum.reduceat(values, starts)
        return out
    out[present] = np.maximum.reduceat(np.where(missing, -math.inf, values), starts)
    out[present[np.logical_and.reduceat(missing, starts)]] = np.nan  # groups with no value at all
    return out
