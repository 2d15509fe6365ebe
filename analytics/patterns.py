"""Workload patterns: each VM's weekly rhythm from its hourly history, named by one fleet-wide model.

Every VM gets a weekday x hour profile (168 bins, Monday 00:00 first, in the configured time zone): the
mean of its hourly CPU demand (``cpu_mean_vcpus``) in each bin. Clear rules decide the edges first:

* ``unknown``: too little history to see a week (fewer than ``min_hours`` hours with CPU data, or a span
  shorter than ``min_span_days``);
* ``idle``: the hourly CPU peak stays below the idle threshold (``[idle] cpu_vcpus_below``) for at least
  ``[idle] share_of_time`` of the hours, the same rule as :mod:`analytics.idle`;
* ``steady``: hourly demand barely moves (coefficient of variation below ``steady_cv``);
* ``spiky``: the weekly profile explains little of the hour-to-hour variance (``r2`` below
  ``periodic_r2``) and the peaks stand far above the median (p99 / median above ``spike_ratio``).

The remaining VMs have a repeating weekly shape. Their profiles, scaled to their own peak (0..1), are
clustered once per refresh with k-means (scikit-learn) across the whole fleet, and each cluster is named
from its centre: quiet outside its active bins (mean of the bins below half the peak under
``quiet_level``) and active mostly in the daytime (06:00-20:00) -> ``office-hours``; mostly at night ->
``nightly-batch``; load that never really stops -> ``steady``. A VM takes its cluster's name, so one noisy
week does not give it a pattern of its own.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from analytics.frames import appearance_codes, epoch_ns, numeric_column

Pattern = Literal["office-hours", "nightly-batch", "steady", "spiky", "idle", "unknown"]
PATTERNS: tuple[Pattern, ...] = ("office-hours", "nightly-batch", "steady", "spiky", "idle", "unknown")
HOURS_PER_WEEK = 168
DAY_LABELS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAYTIME_HOURS = np.arange(6, 20)
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday = 0


class PatternSettings(BaseModel):
    """Thresholds of the pattern rules and the clustering (validated input, ``[patterns]`` in the config)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_hours: int = Field(default=96, ge=24, le=100_000, description="hours with CPU data needed for a pattern")
    min_span_days: float = Field(default=7.0, ge=1, le=400, description="days from first to last hour needed")
    steady_cv: float = Field(default=0.25, gt=0, le=10,
        description="coefficient of variation below which load is steady")
    periodic_r2: float = Field(default=0.3, ge=0, le=1,
        description="share of variance the weekly profile must explain to count as periodic")
    spike_ratio: float = Field(default=2.5, gt=1, le=1000,
        description="p99 / median of hourly demand that counts as spiky")
    quiet_level: float = Field(default=0.15, gt=0, lt=1,
        description="mean of quiet bins (share of the peak) below which a VM is off-duty there")
    day_share: float = Field(default=0.75, gt=0.5, le=1,
        description="share of active bins in daytime (06-20) for office-hours")
    clusters: int = Field(default=8, ge=1, le=64, description="k of the fleet-wide k-means over weekly profiles")
    seed: int = Field(default=0, description="k-means seed (the fit is deterministic for one seed)")


@dataclass(frozen=True, slots=True)
class VmPattern:
    """One VM's pattern and its evidence. ``profile_vcpus`` is the 168-bin weekly mean (NaN = no data)."""

    vm_uuid: str
    pattern: Pattern
    reason: str
    hours: int
    span_days: float
    cv: float | None
    r2: float | None
    cluster: int | None
    profile_vcpus: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class FleetPatterns:
    """The fitted model and every VM's pattern. ``centres`` are the cluster centres (0..1 of each peak)."""

    by_vm: Mapping[str, VmPattern]
    centres: tuple[tuple[float, ...], ...]
    centre_patterns: tuple[Pattern, ...]
    timezone: str
    fit_seconds: float

    def pattern_of(self, vm_uuid: str) -> Pattern:
        found = self.by_vm.get(vm_uuid)
        return found.pattern if found is not None else "unknown"

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {p: 0 for p in PATTERNS}
        for vp in self.by_vm.values():
            out[vp.pattern] += 1
        return out


def week_bins(ts: pd.Series, timezone: str = "UTC") -> tuple[np.ndarray, np.ndarray]:
    """Epoch seconds and weekday x hour bin (0 = Monday 00:00 … 167) of timestamps in ``timezone``.

    Naive timestamps are taken as UTC. Raises ZoneInfoNotFoundError-like errors from pandas for an unknown zone.
    """
    ns, bins = _ns_and_bins(ts, timezone)
    epoch_s: np.ndarray = (ns // 1_000_000_000).astype(np.float64)
    return epoch_s, bins


_NS_PER_HOUR = 3_600_000_000_000


def _ns_and_bins(ts: pd.Series, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """Epoch nanoseconds (int64) and the weekday x hour bin of each timestamp (see :func:`week_bins`).

    In UTC a frame's hours fall in a short range (its lookback): the bin of each distinct hour is worked out
    once and looked up, instead of four integer divisions per row.
    """
    ns = epoch_ns(ts)
    if timezone != "UTC":
        local = pd.to_datetime(ts, utc=True).dt.tz_convert(timezone)
        return ns, (local.dt.day_of_week.to_numpy() * 24 + local.dt.hour.to_numpy()).astype(np.int64)
    hours = ns // _NS_PER_HOUR
    if len(hours) == 0:
        return ns, hours.astype(np.int64)
    first, last = int(hours.min()), int(hours.max())
    if last - first > len(hours):  # sparse hours: a table would be larger than the rows
        return ns, _utc_bins(hours)
    table = _utc_bins(np.arange(first, last + 1, dtype=np.int64))
    hours -= first
    return ns, table[hours]


def _utc_bins(hours: np.ndarray) -> np.ndarray:
    """Weekday x hour bin of hours since the epoch (UTC)."""
    days = hours // 24
    bins: np.ndarray = (((days + _EPOCH_WEEKDAY) % 7) * 24 + hours % 24).astype(np.int64)
    return bins


def _group_quantiles(codes: np.ndarray, values: np.ndarray, n: int, qs: tuple[float, ...]) -> list[np.ndarray]:
    """Per-group quantiles (linear interpolation, as numpy's default); NaN for empty groups.

    Groups are ordered by code (a stable sort of the integer codes, skipped when they are ascending, as in a
    store's frame), then the groups of one length are stacked into a 2-D block and only the order statistics
    the quantiles read are placed (``np.partition`` along rows): each group's values in sorted order at those
    positions, without sorting the fleet's tens of millions of values as one array.
    """
    counts = np.bincount(codes, minlength=n)
    if len(codes) > 1 and not bool((codes[1:] >= codes[:-1]).all()):
        values = values[np.argsort(codes, kind="stable")]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = [np.full(n, np.nan) for _ in qs]
    for length in np.unique(counts[counts > 0]).tolist():
        members = np.flatnonzero(counts == length)
        first = starts[members]
        # each quantile's position counted from the fleet array's start, as a global sort would read it
        pos = [first + q * (length - 1) for q in qs]
        lows = [np.floor(p).astype(np.int64) - first for p in pos]
        highs = [np.minimum(lo + 1, length - 1) for lo in lows]
        kth = np.unique(np.concatenate(lows + highs))
        if len(members) * length == len(values):  # one length for all: the groups as they lie, no gather
            rows_of = values.reshape(len(members), length)
        else:
            rows_of = values[first[:, None] + np.arange(length)[None, :]]
        block = np.partition(rows_of, kth, axis=1)
        rows = np.arange(len(members))
        for res, p, lo, hi in zip(out, pos, lows, highs, strict=True):
            frac = p - (lo + first)
            res[members] = block[rows, lo] * (1 - frac) + block[rows, hi] * frac
    return out


@dataclass(frozen=True, slots=True)
class _Stats:
    names: list[str]
    hours: np.ndarray
    span_days: np.ndarray
    idle_share: np.ndarray
    cv: np.ndarray
    r2: np.ndarray
    peak_ratio: np.ndarray
    profile: np.ndarray  # (vms, 168) mean vCPU, NaN where no data


def _fleet_stats(frame: pd.DataFrame, timezone: str, idle_vcpus: float) -> _Stats:
    codes, uniques = appearance_codes(frame["vm"])
    ns, bins = _ns_and_bins(frame["ts"], timezone)
    cpu = numeric_column(frame, "cpu_mean_vcpus")
    peak = numeric_column(frame, "cpu_max_vcpus")
    ok = np.isfinite(cpu)
    if not ok.all():
        codes, bins, cpu, ns, peak = codes[ok], bins[ok], cpu[ok], ns[ok], peak[ok]
    if not np.isfinite(peak).all():
        peak = np.where(np.isfinite(peak), peak, cpu)
    n = len(uniques)
    hours = np.bincount(codes, minlength=n).astype(np.float64)
    first, last = _group_min_max(codes, ns, n)
    # whole epoch seconds, as week_bins gives them (flooring keeps each group's minimum and maximum)
    first, last = (first // 1_000_000_000).astype(np.float64), (last // 1_000_000_000).astype(np.float64)
    span_days = np.where(hours > 0, (last - first + 3600.0) / 86400.0, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        # counting the idle hours (whole numbers, exact) gives the weighted sum of 0/1 without a float per row
        idle_share = np.bincount(codes[peak < idle_vcpus], minlength=n).astype(np.float64) / hours
        mean = np.bincount(codes, weights=cpu, minlength=n) / hours
        sq = np.bincount(codes, weights=_squared(cpu - mean[codes]), minlength=n)
        cv = np.sqrt(sq / hours) / mean
        flat = codes * HOURS_PER_WEEK + bins
        bin_n = np.bincount(flat, minlength=n * HOURS_PER_WEEK).astype(np.float64)
        bin_sum = np.bincount(flat, weights=cpu, minlength=n * HOURS_PER_WEEK)
        profile = (bin_sum / bin_n).reshape(n, HOURS_PER_WEEK)
        resid = np.bincount(codes, weights=_squared(cpu - profile.reshape(-1)[flat]), minlength=n)
        r2 = 1.0 - resid / sq
    median, p99 = _group_quantiles(codes, cpu, n, (0.5, 0.99))
    with np.errstate(invalid="ignore", divide="ignore"):
        peak_ratio = p99 / np.maximum(median, idle_vcpus)
    return _Stats([str(u) for u in uniques], hours, span_days, idle_share, cv, r2, peak_ratio, profile)


def _squared(values: np.ndarray) -> np.ndarray:
    """``values ** 2`` in place (``values`` is a temporary: no second fleet-sized array)."""
    squared: np.ndarray = np.multiply(values, values, out=values)
    return squared


def _group_min_max(codes: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group (codes 0..n-1): the smallest and largest value (int64; 0 for groups without rows)."""
    first, last = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    if len(codes) == 0:
        return first, last
    if bool((codes[1:] >= codes[:-1]).all()):  # grouped, as a store's frame: one reduction per group
        starts = np.flatnonzero(np.concatenate([[True], codes[1:] != codes[:-1]]))
        first[codes[starts]] = np.minimum.reduceat(values, starts)
        last[codes[starts]] = np.maximum.reduceat(values, starts)
        return first, last
    first[:] = np.iinfo(np.int64).max
    last[:] = np.iinfo(np.int64).min
    np.minimum.at(first, codes, values)
    np.maximum.at(last, codes, values)
    return first, last


def name_centre(centre: np.ndarray, settings: PatternSettings) -> Pattern:
    """Name one cluster centre (168 values, 0..1 of the peak) by the rules in the module doc."""
    active = centre >= 0.5
    if not active.any():
        return "spiky"
    quiet = centre[~active]
    if quiet.size and float(quiet.mean()) > settings.quiet_level:
        return "steady"
    if active.mean() > 0.6:
        return "steady"
    by_hour = active.reshape(7, 24)
    day = by_hour[:, _DAYTIME_HOURS].sum()
    share_day = float(day) / float(active.sum())
    if share_day >= settings.day_share:
        return "office-hours"
    if share_day <= 1.0 - settings.day_share:
        return "nightly-batch"
    return "steady" if active.mean() > 0.35 else "spiky"


def _scaled_profiles(profile: np.ndarray) -> np.ndarray:
    """Each row divided by its own peak, missing bins filled with the row's mean (k-means needs no NaN)."""
    row_mean = np.nanmean(profile, axis=1, keepdims=True)
    filled = np.where(np.isfinite(profile), profile, row_mean)
    peak = filled.max(axis=1, keepdims=True)
    scaled: np.ndarray = np.divide(filled, peak, out=np.zeros_like(filled), where=peak > 0)
    return scaled


#: k-means centres are fitted on at most this many profiles (a seeded sample); every VM is then assigned
#: to its nearest centre. Eight centres over 168 bins are well determined by 10,000 profiles, and the fit
#: stays a second or two however large the fleet.
FIT_SAMPLE = 10_000


def prefetch_clustering() -> None:
    """Start importing scikit-learn's k-means in a background thread, unless it is imported already.

    The import is about a second of module loading; started before a fleet's statistics are worked out
    it runs while numpy works without the interpreter lock, instead of after them. :func:`_cluster`'s own
    import then finds it done, or waits for it to finish (and raises there if it failed).
    """
    if "sklearn.cluster" not in sys.modules:
        threading.Thread(target=_import_kmeans, name="import-sklearn-cluster").start()


def _import_kmeans() -> None:
    try:
        importlib.import_module("sklearn.cluster")
    except Exception:  # the import in _cluster raises it where it is needed
        pass


def _cluster(profiles: np.ndarray, settings: PatternSettings) -> tuple[np.ndarray, np.ndarray]:
    """Labels and centres of a k-means fit over scaled weekly profiles (one row per VM)."""
    from sklearn.cluster import KMeans

    k = max(1, _distinct_rows(profiles, min(settings.clusters, len(profiles))))
    model = KMeans(n_clusters=k, n_init=1, random_state=settings.seed)
    if len(profiles) <= FIT_SAMPLE:
        labels = model.fit_predict(profiles)
    else:
        rng = np.random.default_rng(settings.seed)
        sample = np.sort(rng.choice(len(profiles), FIT_SAMPLE, replace=False))
        model.fit(profiles[sample])
        labels = model.predict(profiles)
    centres: np.ndarray = model.cluster_centers_
    return np.asarray(labels, dtype=np.int64), centres


def _distinct_rows(profiles: np.ndarray, enough: int) -> int:
    """How many distinct rows (rounded to 6 decimals) ``profiles`` has, counting no further than ``enough``."""
    seen: set[bytes] = set()
    for row in profiles:
        seen.add(np.round(row, 6).tobytes())
        if len(seen) >= enough:
            break
    return min(len(seen), enough)


def _edge_rule(i: int, st: _Stats, settings: PatternSettings, idle_share_needed: float) -> tuple[Pattern, str] | None:
    hours = int(st.hours[i])
    if hours < settings.min_hours or st.span_days[i] < settings.min_span_days:
        return "unknown", (f"{hours} h of CPU data over {st.span_days[i]:.1f} days; a pattern needs "
                           f"{settings.min_hours} h over {settings.min_span_days:g} days")
    if st.idle_share[i] >= idle_share_needed:
        return "idle", f"hourly CPU peak below the idle threshold in {st.idle_share[i]:.0%} of {hours} h"
    cv = float(st.cv[i])
    if not np.isfinite(cv) or cv < settings.steady_cv:
        return "steady", f"hourly demand varies little (coefficient of variation {cv:.2f} < {settings.steady_cv:g})"
    r2 = float(st.r2[i]) if np.isfinite(st.r2[i]) else 0.0
    if r2 < settings.periodic_r2 and st.peak_ratio[i] > settings.spike_ratio:
        return "spiky", (f"the weekly profile explains {r2:.0%} of the variance and peaks reach "
                         f"{st.peak_ratio[i]:.1f}x the median")
    return None


def fit_patterns(
    frame: pd.DataFrame,
    settings: PatternSettings | None = None,
    *,
    timezone: str = "UTC",
    idle_vcpus: float = 0.03,
    idle_share: float = 0.97,
) -> FleetPatterns:
    """Fit the fleet-wide pattern model on an hourly frame (``collector.store.base`` columns) and name each VM.

    ``idle_vcpus`` / ``idle_share`` are the ``[idle]`` thresholds. Deterministic for one ``settings.seed``.
    Raises KeyError when the frame lacks ``vm``, ``ts``, ``cpu_mean_vcpus`` or ``cpu_max_vcpus``.
    """
    settings = settings or PatternSettings()
    started = time.perf_counter()
    if frame.empty:
        return FleetPatterns({}, (), (), timezone, 0.0)
    st = _fleet_stats(frame, timezone, idle_vcpus)
    verdicts: dict[int, tuple[Pattern, str]] = {}
    periodic: list[int] = []
    for i in range(len(st.names)):
        edge = _edge_rule(i, st, settings, idle_share)
        if edge is None:
            periodic.append(i)
        else:
            verdicts[i] = edge
    centres = np.empty((0, HOURS_PER_WEEK))
    centre_names: list[Pattern] = []
    clusters: dict[int, int] = {}
    if periodic:
        labels, centres = _cluster(_scaled_profiles(st.profile[periodic]), settings)
        centre_names = [name_centre(c, settings) for c in centres]
        for i, label in zip(periodic, labels, strict=True):
            clusters[i] = int(label)
            verdicts[i] = (centre_names[int(label)], f"weekly profile in cluster {int(label)} "
                           f"({centre_names[int(label)]}); the profile explains {float(st.r2[i]):.0%} of the variance")
    by_vm = {
        name: VmPattern(
            vm_uuid=name, pattern=verdicts[i][0], reason=verdicts[i][1], hours=int(st.hours[i]),
            span_days=float(st.span_days[i]), cv=_finite(st.cv[i]), r2=_finite(st.r2[i]),
            cluster=clusters.get(i), profile_vcpus=st.profile[i],
        )
        for i, name in enumerate(st.names)
    }
    return FleetPatterns(
        by_vm=by_vm, centres=tuple(tuple(float(v) for v in c) for c in centres),
        centre_patterns=tuple(centre_names), timezone=timezone, fit_seconds=time.perf_counter() - started,
    )


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
