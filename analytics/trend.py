"""Growth trends of a usage series: a robust line through daily p95 values, and its projection.

The fit is Theil-Sen (median of pairwise slopes), tested with Mann-Kendall's S statistic. Both are
robust to the odd spike day, need no tuning, and vectorise across a whole fleet with numpy: one call
fits thousands of VMs. scikit-learn's ``HuberRegressor`` was measured at about 60 ms per 14-point fit
on this machine, i.e. minutes for 5,000 VMs x 2 dimensions, so it is not used here.

A series counts as *growing* when the slope is positive, Mann-Kendall says the rise is unlikely to be
noise (one-sided z >= 1.645, about 5 %), and the line projected over the horizon rises by at least
``growth_fraction`` of today's level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SECONDS_PER_DAY = 86400.0
#: One-sided 95 % quantile of the standard normal distribution.
Z_95 = 1.6448536269514722
MIN_TREND_DAYS = 4


@dataclass(frozen=True, slots=True)
class Trend:
    """A fitted trend, in the series' unit per day.

    ``level`` is the fitted value on the last day, ``projected`` the fitted value ``horizon_days``
    later, ``z`` the Mann-Kendall statistic, ``days`` how many daily points were fitted.
    """

    slope_per_day: float
    level: float
    projected: float
    horizon_days: float
    z: float
    days: int
    growing: bool


def daily_quantiles(timestamps_s: np.ndarray, values: np.ndarray, q: float = 95.0) -> tuple[np.ndarray, np.ndarray]:
    """Per UTC day with data: (day number since the epoch, q-th percentile of the day's values)."""
    ok = ~np.isnan(values)
    ts, vals = timestamps_s[ok], values[ok]
    if len(ts) == 0:
        return np.empty(0), np.empty(0)
    day = np.floor(ts / SECONDS_PER_DAY)
    order = np.argsort(day, kind="stable")
    day, vals = day[order], vals[order]
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    out = np.array([np.percentile(chunk, q) for chunk in np.split(vals, starts[1:])])
    return day[starts], out


def theil_sen(days: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit many series at once on a shared day grid.

    ``days``: shape (d,), ascending. ``values``: shape (n, d), NaN where a day is missing.
    Returns (slope per day, intercept, Mann-Kendall z, number of valid days), each shape (n,).
    Slope/intercept are NaN for rows with fewer than two valid days.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    days = np.asarray(days, dtype=np.float64)
    n_days = values.shape[1]
    valid_days = np.count_nonzero(~np.isnan(values), axis=1)
    if n_days < 2:
        nan = np.full(values.shape[0], np.nan)
        return nan, nan, np.zeros(values.shape[0]), valid_days
    i, j = np.triu_indices(n_days, k=1)
    diff = values[:, j] - values[:, i]
    slopes = diff / (days[j] - days[i])
    with np.errstate(all="ignore"):
        has_pair = np.any(~np.isnan(slopes), axis=1)
        slope = np.full(values.shape[0], np.nan)
        if has_pair.any():
            slope[has_pair] = np.nanmedian(slopes[has_pair], axis=1)
        resid = values - slope[:, None] * days[None, :]
        intercept = np.full(values.shape[0], np.nan)
        if has_pair.any():
            intercept[has_pair] = np.nanmedian(resid[has_pair], axis=1)
        s_stat = np.nansum(np.sign(diff), axis=1)
        n = valid_days.astype(np.float64)
        var = n * (n - 1) * (2 * n + 5) / 18.0
        z = np.where(var > 0, (s_stat - np.sign(s_stat)) / np.sqrt(np.where(var > 0, var, 1.0)), 0.0)
    return slope, intercept, z, valid_days


def fit_trend(
    days: np.ndarray, values: np.ndarray, *, horizon_days: float, growth_fraction: float = 0.10
) -> Trend | None:
    """Fit one series of daily values; None when there are fewer than 4 days."""
    ok = ~np.isnan(values)
    days, values = np.asarray(days, dtype=np.float64)[ok], np.asarray(values, dtype=np.float64)[ok]
    if len(days) < MIN_TREND_DAYS:
        return None
    slope, intercept, z, n = theil_sen(days, values[None, :])
    return trend_from_fit(
        float(slope[0]), float(intercept[0]), float(z[0]), int(n[0]), last_day=float(days[-1]),
        horizon_days=horizon_days, growth_fraction=growth_fraction,
    )


def trend_from_fit(
    slope: float, intercept: float, z: float, n: int, *, last_day: float, horizon_days: float,
    growth_fraction: float,
) -> Trend | None:
    """Build a :class:`Trend` from fitted numbers (shared by the single and fleet paths)."""
    if n < MIN_TREND_DAYS or not math.isfinite(slope):
        return None
    level = intercept + slope * last_day
    projected = level + slope * horizon_days
    rise = projected - level
    growing = slope > 0 and z >= Z_95 and rise >= growth_fraction * max(abs(level), 1e-12)
    return Trend(slope, level, projected, horizon_days, z, n, bool(growing))
