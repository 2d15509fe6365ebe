"""Anchor: the Kubernetes Vertical Pod Autoscaler recommender's target estimate.

What the VPA recommender does (kubernetes/autoscaler, ``vertical-pod-autoscaler/pkg/recommender``):

* every CPU usage sample goes into a *decaying histogram*: its weight is multiplied by
  ``2 ** ((sample_time - reference) / half_life)`` with a 24 h half-life (``cpu-histogram-decay-half-life``),
  so a sample a day older counts half as much (``util/decaying_histogram.go``);
* memory is sampled as the **peak per aggregation interval** (``memory-aggregation-interval`` 24 h,
  ``memory-aggregation-interval-count`` 8, so 8 days) into a decaying histogram with the same half-life;
* buckets grow exponentially: the first is 0.01 cores (CPU) or 1e7 bytes (memory) wide and each next
  one 5 % wider (``model/aggregations_config.go``, ``util/histogram_options.go``);
* the percentile walks the buckets until the cumulative weight reaches ``p x total`` and returns the
  *end* of that bucket (``util/histogram.go``);
* target = P90 of CPU and P90 of memory peaks, times 1 + 15 % safety margin
  (``logic/recommender.go``: ``targetCPUPercentile = 0.9``, ``targetMemoryPeaksPercentile = 0.9``,
  ``safetyMarginFraction = 0.15``), at least 25 millicores and 250 MiB (``pod-recommendation-min-*``).

The implementation below follows those rules on our typed series; nothing is fitted or tuned.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from analytics.rightsizing.base import UsageHistory, group_starts
from analytics.rightsizing.decide import Strategy
from analytics.rightsizing.needs import DimensionNeed, Need
from analytics.rightsizing.settings import VpaSettings

NAME = "vpa"
MIB = 1024**2


@functools.lru_cache(maxsize=8)
def bucket_starts(first_bucket: float, growth: float, max_value: float) -> np.ndarray:
    """Start of every exponential bucket: ``first * (ratio**n - 1) / (ratio - 1)``, the last >= max."""
    ratio = 1.0 + growth
    n_buckets = int(math.ceil(math.log(max_value * (ratio - 1) / first_bucket + 1, ratio))) + 1
    n = np.arange(n_buckets, dtype=np.float64)
    starts = first_bucket * (ratio**n - 1) / (ratio - 1)
    starts.flags.writeable = False  # shared through the cache
    return starts


def decaying_percentile(
    values: np.ndarray,
    times_s: np.ndarray,
    *,
    q: float,
    reference_s: float,
    half_life_s: float,
    first_bucket: float,
    growth: float,
    max_value: float,
) -> float:
    """Percentile (0..100) of a decaying exponential histogram, as the VPA recommender computes it.

    Each value weighs ``2 ** ((t - reference) / half_life)``. Returns the end of the bucket where the
    cumulative weight first reaches ``q/100`` of the total (the last bucket's start if it is the last),
    or NaN when there are no values.
    """
    ok = ~np.isnan(values)
    values, times_s = values[ok], times_s[ok]
    if len(values) == 0:
        return math.nan
    starts = bucket_starts(first_bucket, growth, max_value)
    ratio = 1.0 + growth
    with np.errstate(divide="ignore"):
        idx = np.where(
            values < first_bucket, 0,
            np.floor(np.log(values * (ratio - 1) / first_bucket + 1) / np.log(ratio)),
        ).astype(np.int64)
    idx = np.minimum(idx, len(starts) - 1)
    weights = np.exp2((times_s - reference_s) / half_life_s)
    hist = np.bincount(idx, weights=weights, minlength=len(starts))
    cum = np.cumsum(hist)
    threshold = q / 100.0 * cum[-1]
    lo, hi = int(idx.min()), int(idx.max())
    bucket = lo + int(np.searchsorted(cum[lo:hi], threshold, side="left"))
    bucket = min(bucket, hi)
    if bucket < len(starts) - 1:
        return float(starts[bucket + 1])
    return float(starts[bucket])


def interval_peaks(times_s: np.ndarray, values: np.ndarray, *, end_s: float, interval_s: float,
                   count: int) -> tuple[np.ndarray, np.ndarray]:
    """Peak value per interval counted back from ``end_s`` (newest ``count`` intervals that have data).

    Returns (interval start s, peak); VPA records each interval's peak at the interval start.
    """
    ok = ~np.isnan(values)
    t, v = times_s[ok], values[ok]
    if len(t) == 0:
        return np.empty(0), np.empty(0)
    k = np.floor((end_s - t - 1e-9) / interval_s).astype(np.int64)  # 0 = newest interval
    keep = k < count
    k, v = k[keep], v[keep]
    if len(k) == 0:
        return np.empty(0), np.empty(0)
    order = np.argsort(k, kind="stable")
    k, v = k[order], v[order]
    starts = group_starts(k)
    peaks = np.maximum.reduceat(v, starts)
    return end_s - (k[starts] + 1) * interval_s, peaks


def estimate(history: UsageHistory, settings: VpaSettings) -> Need:
    """CPU and memory targets of the VPA recommender (vCPUs, bytes)."""
    end = history.analysis_end_s
    half_life_s = settings.half_life_hours * 3600.0
    cpu_p = decaying_percentile(
        history.cpu_vcpus, history.timestamps_s, q=settings.cpu_percentile, reference_s=end,
        half_life_s=half_life_s, first_bucket=0.01, growth=settings.bucket_growth, max_value=1000.0,
    )
    cpu_value = max(cpu_p * (1 + settings.cpu_headroom_fraction), settings.min_cpu_vcpus)
    cpu = DimensionNeed(
        value=cpu_value,
        statistic=f"p{settings.cpu_percentile:g} of CPU demand (24 h-decaying histogram)",
        observed=cpu_p,
        headroom_fraction=settings.cpu_headroom_fraction,
        peak=float(np.nanmax(history.cpu_peaks)),
    )
    memory: DimensionNeed | None = None
    note = "memory use unknown (no guest balloon stats)"
    if history.memory_known:
        interval_s = settings.memory_interval_hours * 3600.0
        starts, peaks = interval_peaks(
            history.timestamps_s, history.memory_used_bytes, end_s=end, interval_s=interval_s,
            count=settings.memory_interval_count,
        )
        mem_p = decaying_percentile(
            peaks, starts, q=settings.memory_percentile, reference_s=end, half_life_s=half_life_s,
            first_bucket=1e7, growth=settings.bucket_growth, max_value=1e12,
        )
        if math.isnan(mem_p):
            # running earlier, but no memory reading in the newest intervals VPA keeps: nothing to size
            note = (f"no memory reading in the last {settings.memory_interval_count} "
                    f"{settings.memory_interval_hours:g} h intervals")
            return Need(cpu=cpu, memory=None, memory_note=note)
        memory = DimensionNeed(
            value=max(mem_p * (1 + settings.memory_headroom_fraction), float(settings.min_memory_bytes)),
            statistic=(f"p{settings.memory_percentile:g} of {settings.memory_interval_hours:g} h memory peaks "
                       "(24 h-decaying histogram)"),
            observed=mem_p,
            headroom_fraction=settings.memory_headroom_fraction,
            peak=float(np.nanmax(history.memory_used_bytes)),
        )
    return Need(cpu=cpu, memory=memory, memory_note=note)


STRATEGY = Strategy(NAME, "Kubernetes VPA recommender (P90 + 15 % over 24 h-decaying histograms)",
                    VpaSettings, estimate)

