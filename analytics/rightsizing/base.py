"""Right-sizing building blocks: typed usage history, needs, findings, and the shared decision rules.

A strategy is a pure function ``recommend(history, spec, settings, catalogue=...) -> Recommendation``.
Strategies differ only in how they turn a usage history into a *need* (vCPUs and memory bytes); the
rules every strategy shares live here (:func:`decide`), taken from the anchors' published behaviour
(DESIGN.md, "Right-sizing rules"):

* no recommendation with less than 30 h of data or less than 3 days of span ("insufficient data");
* memory whose use is unknown is never downsized;
* a downsize needs savings of at least max(10 % of the VM's cost, a configurable minimum per month);
* (optionally, on by default for our own strategy) a growing trend blocks a downsize of that dimension.

Monthly figures use 720 hours per month: STACKIT publishes ``monthlyPrice = price x 720`` for every
machine type (data/prices notes), so our monthly numbers match the provider's price list.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from analytics.catalogue import HOURS_PER_MONTH, MachineType

# DimensionNeed and Need are re-exported: strategies and callers have imported them from here
from analytics.rightsizing.needs import DimensionNeed as DimensionNeed
from analytics.rightsizing.needs import Need as Need
from analytics.rightsizing.settings import StrategySettings
from analytics.trend import Trend

GIB = 1024**3
SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0
_EPS_VCPUS = 1e-9


class Finding(enum.StrEnum):
    """What a recommendation says about a VM's size."""

    OVER_PROVISIONED = "over-provisioned"
    UNDER_PROVISIONED = "under-provisioned"
    OPTIMIZED = "optimized"
    IDLE = "idle"
    INSUFFICIENT_DATA = "insufficient-data"
    # set by the fleet path (analytics.recommend), never by a strategy
    BELOW_THRESHOLD = "below-threshold"
    STOPPED = "stopped"
    RESIZE_REGRET = "resize-regret"
    CONTENTION = "contention"  # starved by its host (vCPU delay), not undersized: no upsize


class VmSpecLike(Protocol):
    """The VM's current allocation (``VmRecord`` and ``VmSpec`` both fit)."""

    @property
    def vcpus(self) -> int: ...

    @property
    def memory_bytes(self) -> int: ...


@dataclass(frozen=True, slots=True)
class VmSpec:
    """A VM's current allocation: vCPUs and memory in bytes."""

    vcpus: int
    memory_bytes: int


class FittingCatalogue(Protocol):
    """What right-sizing needs from a price catalogue (``CsvPriceCatalogue`` fits)."""

    def cheapest_fitting(self, vcpus: float, memory_bytes: float) -> MachineType | None: ...

    def fitting(self, vcpus: float, memory_bytes: float, n: int = 3) -> list[MachineType]: ...


@dataclass(frozen=True, slots=True)
class UsageHistory:
    """One VM's usage over time, as parallel numpy arrays (one element per interval).

    ``timestamps_s``: float64 epoch seconds, ascending. ``cpu_vcpus``: mean CPU demand over the interval
    in vCPU-equivalents (NaN = not running / not measured). ``cpu_peak_vcpus``: peak demand within the
    interval when the source kept it (hourly rollups), else ``None`` meaning "same as ``cpu_vcpus``".
    ``memory_used_bytes``: guest-used memory, the interval's peak when known (NaN = unknown).
    ``vcpus``/``memory_bytes``: the allocation during the history. ``interval_s``: nominal step.
    ``end_s``: the analysis time (defaults to the last timestamp plus one interval).
    ``covered_s``: seconds each interval's measurements actually cover (hourly rollups: ``running_s``, the
    sum of the running samples' intervals); ``None`` means every measured interval is a full ``interval_s``.
    """

    timestamps_s: np.ndarray
    cpu_vcpus: np.ndarray
    memory_used_bytes: np.ndarray
    vcpus: int
    memory_bytes: int
    interval_s: float = 300.0
    cpu_peak_vcpus: np.ndarray | None = None
    end_s: float | None = None
    covered_s: np.ndarray | None = None

    @classmethod
    def from_arrays(
        cls,
        timestamps_s: Sequence[float] | np.ndarray,
        cpu_vcpus: Sequence[float] | np.ndarray,
        memory_used_bytes: Sequence[float] | np.ndarray | None,
        *,
        vcpus: int,
        memory_bytes: int,
        interval_s: float = 300.0,
        cpu_peak_vcpus: Sequence[float] | np.ndarray | None = None,
        end_s: float | None = None,
    ) -> UsageHistory:
        """Build a history from array-likes; ``memory_used_bytes=None`` means memory use is unknown.

        Raises ValueError when the arrays differ in length or timestamps are not ascending.
        """
        ts = np.asarray(timestamps_s, dtype=np.float64)
        cpu = np.asarray(cpu_vcpus, dtype=np.float64)
        mem = (np.full(ts.shape, np.nan) if memory_used_bytes is None
               else np.asarray(memory_used_bytes, dtype=np.float64))
        peak = None if cpu_peak_vcpus is None else np.asarray(cpu_peak_vcpus, dtype=np.float64)
        lengths = {len(ts), len(cpu), len(mem)} | ({len(peak)} if peak is not None else set())
        if len(lengths) != 1:
            raise ValueError(f"history arrays differ in length: {sorted(lengths)!r}; pass one value per interval")
        if len(ts) > 1 and bool(np.any(np.diff(ts) < 0)):
            raise ValueError("history timestamps are not ascending; sort them first")
        return cls(ts, cpu, mem, int(vcpus), int(memory_bytes), float(interval_s), peak, end_s)

    @property
    def analysis_end_s(self) -> float:
        if self.end_s is not None:
            return float(self.end_s)
        return float(self.timestamps_s[-1] + self.interval_s) if len(self.timestamps_s) else 0.0

    @property
    def cpu_peaks(self) -> np.ndarray:
        """Peak CPU demand per interval (vCPUs)."""
        return self.cpu_vcpus if self.cpu_peak_vcpus is None else self.cpu_peak_vcpus

    def valid_cpu(self) -> np.ndarray:
        """Mask of intervals with a CPU measurement."""
        mask: np.ndarray = ~np.isnan(self.cpu_vcpus)
        return mask

    @property
    def memory_known(self) -> bool:
        return bool(np.any(~np.isnan(self.memory_used_bytes)))

    @property
    def coverage_hours(self) -> float:
        """Hours of measured CPU data: the covered seconds of intervals with a value (each at most the
        nominal step; a full step each when ``covered_s`` is unknown)."""
        valid = self.valid_cpu()
        if self.covered_s is None:
            return float(np.count_nonzero(valid)) * self.interval_s / SECONDS_PER_HOUR
        covered = np.clip(np.nan_to_num(self.covered_s[valid], nan=self.interval_s), 0.0, self.interval_s)
        return float(covered.sum()) / SECONDS_PER_HOUR

    @property
    def span_days(self) -> float:
        """Days from the first to the last measured interval (end of it)."""
        ts = self.timestamps_s[self.valid_cpu()]
        if len(ts) == 0:
            return 0.0
        return float(ts[-1] - ts[0] + self.interval_s) / SECONDS_PER_DAY

    def window(self, days: float) -> UsageHistory:
        """The last ``days`` days before the analysis end."""
        end = self.analysis_end_s
        start = end - days * SECONDS_PER_DAY
        if len(self.timestamps_s) == 0 or self.timestamps_s[0] >= start:  # ascending: all inside
            return self
        keep = self.timestamps_s >= start
        return replace(
            self,
            timestamps_s=self.timestamps_s[keep],
            cpu_vcpus=self.cpu_vcpus[keep],
            memory_used_bytes=self.memory_used_bytes[keep],
            cpu_peak_vcpus=None if self.cpu_peak_vcpus is None else self.cpu_peak_vcpus[keep],
            end_s=end,
            covered_s=None if self.covered_s is None else self.covered_s[keep],
        )

    def hourly(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per clock hour with data: (hour start s, peak CPU vCPUs, peak memory used bytes or NaN)."""
        valid = self.valid_cpu()
        ts = self.timestamps_s[valid]
        if len(ts) == 0:
            empty = np.empty(0)
            return empty, empty, empty
        peaks = self.cpu_peaks[valid]
        mem = self.memory_used_bytes[valid]
        if self.interval_s >= SECONDS_PER_HOUR:
            return np.floor(ts / SECONDS_PER_HOUR) * SECONDS_PER_HOUR, peaks, mem
        hours = np.floor(ts / SECONDS_PER_HOUR)
        starts = group_starts(hours)
        # fmax skips NaN; an hour whose memory is all unknown stays NaN
        return hours[starts] * SECONDS_PER_HOUR, np.fmax.reduceat(peaks, starts), np.fmax.reduceat(mem, starts)


@dataclass(frozen=True, slots=True)
class Option:
    """One machine type that covers the need, with its monthly price and saving vs the current type."""

    machine_type: MachineType
    price_per_month: float
    monthly_savings: float


@dataclass(frozen=True, slots=True)
class Evidence:
    """Every number a recommendation rests on."""

    strategy: str
    lookback_days: float
    coverage_hours: float
    span_days: float
    samples: int
    cpu: DimensionNeed | None = None
    memory: DimensionNeed | None = None
    cpu_trend: Trend | None = None
    memory_trend: Trend | None = None
    min_savings_per_month: float | None = None
    hours_per_month: float = HOURS_PER_MONTH


@dataclass(frozen=True, slots=True)
class Recommendation:
    """A strategy's verdict on one VM.

    ``target_vcpus``/``target_memory_bytes`` are the need the recommended type was chosen for;
    ``recommended_type`` is the type to run (the current one when no change is advised). Savings are per
    month (720 h). ``risk`` is 0 (none) .. 4 (high) for applying the recommendation.
    """

    finding: Finding
    target_vcpus: float | None
    target_memory_bytes: int | None
    current_type: MachineType | None
    recommended_type: MachineType | None
    options: tuple[Option, ...] = ()
    monthly_savings: float = 0.0
    risk: int = 0
    reasons: Mapping[str, str] = field(default_factory=dict)
    evidence: Evidence | None = None
    excluded: bool = False

    @classmethod
    def undetermined(
        cls, reason: str, *, current_type: MachineType | None = None, evidence: Evidence | None = None
    ) -> Recommendation:
        """A result saying there is not enough data to recommend anything."""
        return cls(
            finding=Finding.INSUFFICIENT_DATA,
            target_vcpus=None,
            target_memory_bytes=None,
            current_type=current_type,
            recommended_type=current_type,
            reasons={"overall": reason},
            evidence=evidence,
        )

    @property
    def is_determined(self) -> bool:
        return self.finding is not Finding.INSUFFICIENT_DATA

    @property
    def changes_type(self) -> bool:
        return (
            self.recommended_type is not None
            and self.current_type is not None
            and self.recommended_type.name != self.current_type.name
            and not self.excluded
        )


def group_starts(keys: np.ndarray) -> np.ndarray:
    """Indices where a run of equal values starts in a sorted 1-D array (first is 0; empty for empty)."""
    if len(keys) == 0:
        return np.empty(0, dtype=np.int64)
    change = np.empty(len(keys), dtype=bool)
    change[0] = True
    np.not_equal(keys[1:], keys[:-1], out=change[1:])
    return np.flatnonzero(change)


def percentile(values: np.ndarray, q: float) -> float:
    """The q-th percentile (0..100) of the non-NaN values, linear interpolation; NaN when empty.

    Same result as ``np.percentile(..., method="linear")``, without its per-call overhead (this runs once
    per VM and dimension in the fleet loop).
    """
    finite = values[~np.isnan(values)]
    n = len(finite)
    if n == 0:
        return math.nan
    if q >= 100.0:
        return float(finite.max())
    ordered = np.sort(finite)
    pos = q / 100.0 * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


def _max_or_nan(values: np.ndarray) -> float:
    """Largest non-NaN value; NaN when there is none."""
    finite = values[~np.isnan(values)]
    return float(finite.max()) if len(finite) else math.nan


def percentile_estimate(history: UsageHistory, settings: StrategySettings) -> Need:
    """CPU need = percentile of interval demand x (1 + headroom); memory need from ``memory_need``.

    The shape the AWS and KRR anchors share; they differ only in their published parameters.
    """
    percentile_used = settings.cpu_percentile
    headroom = settings.cpu_headroom_fraction
    observed = percentile(history.cpu_vcpus, percentile_used)
    return Need(
        cpu=DimensionNeed(
            value=observed * (1.0 + headroom),
            statistic=f"p{percentile_used:g} of CPU demand",
            observed=observed,
            headroom_fraction=headroom,
            peak=_max_or_nan(history.cpu_peaks[history.valid_cpu()]),
        ),
        memory=memory_need(history, settings),
    )


def memory_need(history: UsageHistory, settings: StrategySettings) -> DimensionNeed | None:
    """Memory need = percentile (default max) of memory used x (1 + headroom); None when unknown."""
    mem = history.memory_used_bytes
    known = mem[~np.isnan(mem)]
    if len(known) == 0:
        return None
    q = settings.memory_percentile
    peak = float(known.max())
    observed = peak if q >= 100 else percentile(known, q)
    stat = "max of memory used" if q >= 100 else f"p{q:g} of memory used"
    return DimensionNeed(
        value=observed * (1.0 + settings.memory_headroom_fraction),
        statistic=stat,
        observed=observed,
        headroom_fraction=settings.memory_headroom_fraction,
        peak=peak,
    )


