"""Memory headroom from the spread of each VM's daily peaks, one margin calibrated on the fleet.

A fixed memory headroom (maximum used + 15 %) pays for the VMs whose daily peaks wander on every VM, also
on those whose daily peaks sit far below their maximum day after day. Machine types come in memory
steps (0.5, 1, 2, 4, 8, 16 GiB ...), so those 15 points push a VM whose maximum is 0.97 GiB onto a 2 GiB
type. Here each VM's memory need is

    need = clip(median + k x spread, max x (1 + min_headroom), max x (1 + memory_headroom_fraction))

over the *daily maxima* of memory used in its window: ``median`` and ``spread`` (interquartile range,
at least :data:`SPREAD_FLOOR` x median) of those daily peaks, ``max`` the largest value used. A VM whose
daily peaks are steady and well below the level of the next memory step gets little headroom; one whose
daily peaks spread widely keeps the full headroom. The need is never below the maximum used (memory is
not compressible: no one-off peak is trimmed) plus ``min_headroom`` (``memory_peak_min_headroom_fraction``,
5 %: a VM whose daily peaks are flat is not sized to exactly what it used) and never above the percentile
rule's. A negative ``min_headroom`` lets the need fall below the maximum used: memory is traded, a day whose
peak exceeds the need is an overrun, and the risk target (now tens of per cent of days) sets how many
(``backtest --sweep``'s ``rightsizer-peaks-trade``; no profile does this).

**Calibration** (split-conformal over held-out days, as :mod:`analytics.rightsizing.calibrated` does over
intervals): inside each VM's *training* window its days are cut at :data:`CUT_FRACTIONS`; the days before
a cut give the median and spread, every day after it a score ``(daily max - median) / spread``. The
pooled scores of all VMs and cuts give ``k``, their conformal quantile at ``1 - risk``: at most ``risk``
per cent of held-out VM-days peak above ``median + k x spread``. Nothing after the training window is
read, so the evaluation window of a backtest cannot move the margin (tests/unit/analytics/
test_peak_spread.py shuffles it to prove so).

Why daily peaks: memory overruns are rare single intervals, far too few to calibrate an interval
quantile at a memory risk of hundredths of a per cent; but a VM's day-to-day peak is measured every
day, and how far a new day's peak lands above the typical one in units of their spread is a statistic
the fleet shares (on the Bitbrains dev trace its 95 % quantile is 2.6-4.1 at every split).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analytics.rightsizing.base import SECONDS_PER_DAY, UsageHistory, group_starts
from analytics.rightsizing.calibrated import MAX_CALIBRATION_VMS, conformal_margin
from analytics.rightsizing.needs import DimensionNeed

#: Share of the median every spread has at least, so that a VM with identical daily peaks still has one.
SPREAD_FLOOR = 0.02
#: Where each training window's days are cut for calibration (share of its days).
CUT_FRACTIONS: tuple[float, ...] = (0.5, 0.625, 0.75)
#: Days a pseudo-training part must hold to give a median and spread.
MIN_DAYS = 3
GIB = 1024**3
#: Relative spread of the daily peaks (interquartile range / median) below which a VM's memory reads "steady",
#: at or above which "spiky" (words only: the sizing does not read them).
STEADY_BELOW = 0.05
SPIKY_FROM = 0.25


@dataclass(frozen=True, slots=True)
class PeakSpread:
    """One VM's daily memory peaks: their median and spread (bytes) and how many days they cover."""

    median: float
    spread: float
    days: int


def daily_maxima(timestamps_s: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The largest value of each UTC day with a value (ascending days; NaN values skipped)."""
    known = ~np.isnan(values)
    ts, v = timestamps_s[known], values[known]
    if len(v) == 0:
        return np.empty(0)
    starts = group_starts(np.floor(ts / SECONDS_PER_DAY))
    maxima: np.ndarray = np.maximum.reduceat(v, starts)
    return maxima


def peak_spread(maxima: np.ndarray) -> PeakSpread | None:
    """Median and spread of daily maxima; None with fewer than :data:`MIN_DAYS` days or a zero median."""
    if len(maxima) < MIN_DAYS:
        return None
    q25, median, q75 = _quartiles(maxima)
    if not median > 0:
        return None
    return PeakSpread(median, max(q75 - q25, SPREAD_FLOOR * median), len(maxima))


def _quartiles(values: np.ndarray) -> tuple[float, float, float]:
    """P25, P50 and P75 of ``values`` (no NaN), bit for bit what ``np.percentile(values, (25, 50, 75))`` gives
    (its linear method and its interpolation, which counts back from the upper value past the midpoint), at a
    twentieth of its cost on a few dozen days: the fleet calibration calls this three times per VM."""
    ordered = np.sort(values).tolist()
    last = len(ordered) - 1
    out = []
    for q in (0.25, 0.5, 0.75):
        pos = last * q
        lo = int(pos)
        t = pos - lo
        a, b = ordered[lo], ordered[min(lo + 1, last)]
        out.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)
    return out[0], out[1], out[2]


def held_out_scores(histories: Sequence[tuple[np.ndarray, np.ndarray]],
                    cut_fractions: Sequence[float] = CUT_FRACTIONS) -> np.ndarray:
    """Every held-out day's score ``(daily max - median) / spread`` of every VM and cut, pooled (1-D).

    ``histories``: per VM, ascending times (s) and memory used (NaN = none) of its training window only.
    """
    out = [np.empty(0)]
    for ts, values in histories:
        maxima = daily_maxima(ts, values)
        for f in cut_fractions:
            cut = int(round(len(maxima) * f))
            if cut >= len(maxima):
                continue
            s = peak_spread(maxima[:cut])
            if s is not None:
                out.append((maxima[cut:] - s.median) / s.spread)
    return np.concatenate(out)


def calibrate_margin(histories: Sequence[UsageHistory], risk_pct: float, lookback_days: float) -> float | None:
    """The fleet margin ``k`` for ``risk_pct`` % of held-out VM-days above the need; None without scores.

    Of a fleet larger than :data:`~analytics.rightsizing.calibrated.MAX_CALIBRATION_VMS`, every k-th VM.
    """
    histories = histories[::max(1, math.ceil(len(histories) / MAX_CALIBRATION_VMS))]
    windows = [(w.timestamps_s, w.memory_used_bytes) for w in (h.window(lookback_days) for h in histories)]
    return conformal_margin(held_out_scores(windows), risk_pct)


def memory_need(s: PeakSpread | None, peak: float, margin: float, risk_pct: float,
                headroom_fraction: float, min_headroom_fraction: float = 0.0) -> DimensionNeed:
    """The memory need of one VM (bytes) with its evidence in words.

    ``peak``: the largest memory used in the window; without a spread (too few days) the need is the
    percentile rule's, ``peak x (1 + headroom_fraction)``. The need is at least ``peak x (1 +
    min_headroom_fraction)``: a VM whose daily peaks are flat is not sized to exactly what it used.
    """
    ceiling = peak * (1.0 + headroom_fraction)
    if s is None:
        value = ceiling
        words = f"max of memory used (too few days for the spread of daily peaks: {headroom_fraction:.0%} headroom)"
    else:
        value = min(max(s.median + margin * s.spread, peak * (1.0 + min_headroom_fraction)), ceiling)
        words = (f"max of memory used (daily peaks: median {s.median / GIB:.2f} GiB, spread {s.spread / GIB:.2f} "
                 f"GiB over {s.days} days; fleet margin {margin:+.2f} x spread for {risk_pct:g} % of days above)")
    headroom = value / peak - 1.0 if peak > 0 else 0.0
    relative = None if s is None else s.spread / s.median
    return DimensionNeed(value=value, statistic=words, observed=peak, headroom_fraction=headroom, peak=peak,
                         shape="" if relative is None else shape_word(relative), spread=relative)


def shape_word(relative_spread: float) -> str:
    """"steady", "variable" or "spiky" for daily peaks whose interquartile range is ``relative_spread`` of
    their median."""
    return "steady" if relative_spread < STEADY_BELOW else "spiky" if relative_spread >= SPIKY_FROM else "variable"


__all__ = ["CUT_FRACTIONS", "MIN_DAYS", "SPREAD_FLOOR", "PeakSpread", "calibrate_margin", "daily_maxima",
           "held_out_scores", "memory_need", "peak_spread"]
