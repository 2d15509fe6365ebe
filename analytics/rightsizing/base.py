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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from analytics.catalogue import HOURS_PER_MONTH, MachineType

# DimensionNeed and Need are re-exported: strategies and callers have imported them from here
from analytics.rightsizing.needs import DimensionNeed as DimensionNeed
from analytics.rightsizing.needs import Need as Need
from analytics.rightsizing.needs import PreparedNeed
from analytics.rightsizing.settings import Policy, RightsizerSettings, StrategySettings, profile_overrides
from analytics.trend import Trend, daily_quantiles, fit_trend
from collector.domxml import EXCLUDE_LABEL, is_excluded

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


NeedEstimator = Callable[[UsageHistory, Any], Need]
FleetCalibration = Callable[[Sequence[UsageHistory], Any], StrategySettings]


@dataclass(frozen=True, slots=True)
class Strategy:
    """A named strategy: its settings model and its need estimator."""

    name: str
    summary: str
    settings_type: type[StrategySettings]
    estimate: NeedEstimator
    #: The fleet pass a strategy may have (ours: calibrated margins), run once over every VM's history
    #: before the per-VM estimates; None = none.
    calibrate: FleetCalibration | None = None

    def default_settings(self) -> StrategySettings:
        return self.settings_type.model_validate({})

    def fleet_settings(self, histories: Sequence[UsageHistory], settings: StrategySettings) -> StrategySettings:
        """``settings`` after the strategy's fleet pass over ``histories`` (what each VM may see)."""
        return settings if self.calibrate is None else self.calibrate(histories, settings)

    def recommend(
        self,
        history: UsageHistory,
        spec: VmSpecLike,
        settings: StrategySettings | None = None,
        *,
        catalogue: FittingCatalogue,
        current_type: MachineType | None = None,
    ) -> Recommendation:
        """Recommend a size for one VM; see :func:`decide`."""
        return decide(
            self, history, spec, settings or self.default_settings(), catalogue=catalogue,
            current_type=current_type,
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


def _fmt_bytes(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def _fmt_money(v: float, currency: str) -> str:
    return f"{v:.2f} {currency}"


def _check_data(cov: float, span: float, settings: StrategySettings) -> str | None:
    if cov < settings.min_coverage_hours:
        return (f"insufficient data: {cov:.1f} h of data in the last {settings.lookback_days:g} days, "
                f"need {settings.min_coverage_hours:g} h")
    if span < settings.min_span_days:
        return (f"insufficient data: data spans {span:.1f} days, need {settings.min_span_days:g} days")
    return None


def history_trends(history: UsageHistory, settings: StrategySettings) -> tuple[Trend | None, Trend | None]:
    """CPU and memory trends: robust line through the daily p95 of hourly peaks (None = too few days)."""
    hours, cpu_peaks, mem_peaks = history.hourly()
    days, daily = daily_quantiles(hours, cpu_peaks, q=95.0)
    cpu = fit_trend(days, daily, horizon_days=settings.lookback_days, growth_fraction=settings.trend_growth_fraction)
    mem = None
    if history.memory_known:
        days, daily = daily_quantiles(hours, mem_peaks, q=95.0)
        mem = fit_trend(days, daily, horizon_days=settings.lookback_days,
                        growth_fraction=settings.trend_growth_fraction)
    return cpu, mem


@dataclass(slots=True)
class _Sizing:
    """The working state of :func:`decide`: the needs (vCPUs, bytes) as rules adjust them, reasons, risk."""

    cpu_need: float
    mem_need: float
    reasons: dict[str, str]
    risk: int = 0
    blocked: bool = False


def _unusable_need(need: Need) -> str | None:
    """Why a need cannot be sized (a non-finite value from odd data), or None when it can."""
    if not math.isfinite(need.cpu.value):
        return f"insufficient data: {need.cpu.statistic} is undefined on this history"
    if need.memory is not None and not math.isfinite(need.memory.value):
        return f"insufficient data: {need.memory.statistic} is undefined on this history"
    return None


def _vcpu_floor(cpu_need: float, mem_need: float, need: Need, spec: VmSpecLike, catalogue: FittingCatalogue,
                reasons: dict[str, str]) -> float:
    """CPU need raised to the vCPUs of the cheapest type holding ``need.cpu_floor_memory_bytes`` (at most
    the allocation) when the type chosen for the needs would have fewer: trimming memory headroom never
    takes away vCPUs a type bundled with it."""
    if need.cpu_floor_memory_bytes is None or not math.isfinite(need.cpu_floor_memory_bytes):
        return cpu_need
    floor_type = catalogue.cheapest_fitting(cpu_need, need.cpu_floor_memory_bytes)
    chosen = catalogue.cheapest_fitting(cpu_need, math.ceil(mem_need))
    if floor_type is None or chosen is None:
        return cpu_need
    floor = float(min(floor_type.vcpus, spec.vcpus))
    if chosen.vcpus >= floor:
        return cpu_need
    reasons["cpu"] += (f"; kept {floor:g} vCPU, as {floor_type.name} holding "
                       f"{_fmt_bytes(need.cpu_floor_memory_bytes)} has")
    return floor


def decide(
    strategy: Strategy,
    history: UsageHistory,
    spec: VmSpecLike,
    settings: StrategySettings,
    *,
    catalogue: FittingCatalogue,
    current_type: MachineType | None = None,
    trends: tuple[Trend | None, Trend | None] | None = None,
    prepared: PreparedNeed | None = None,
) -> Recommendation:
    """Turn a strategy's need into a finding, options and a recommended type under the shared rules.

    ``current_type`` defaults to the cheapest eligible type covering ``spec``. ``trends`` (CPU, memory)
    may be passed precomputed (the fleet path fits them all at once); otherwise they are fitted here when
    ``settings.trend_blocks_downsize``. A growing trend blocks the downsize of its dimension when the
    projected daily p95 plus headroom would outgrow the recommended type within one more lookback.
    ``prepared`` is this history's window measured for the whole fleet at once
    (:func:`analytics.rightsizing.batch.fleet_needs`, same result); ``history`` is then read only for
    trends not passed in. Never raises for data problems: too little data is an ``insufficient-data`` result.
    """
    if current_type is None:
        current_type = catalogue.cheapest_fitting(spec.vcpus, spec.memory_bytes)
    window = None
    if prepared is None:
        window = history.window(settings.lookback_days)
        samples, coverage, span = _coverage(window)
    else:
        samples, coverage, span = prepared.samples, prepared.coverage_hours, prepared.span_days
    problem = _check_data(coverage, span, settings) if samples else "insufficient data: no CPU measurement"
    if problem is not None:
        evidence = Evidence(strategy.name, settings.lookback_days, coverage, span, samples)
        return Recommendation.undetermined(problem, current_type=current_type, evidence=evidence)

    if prepared is not None and prepared.need is not None:
        need = prepared.need
    else:
        need = strategy.estimate(window if window is not None else history.window(settings.lookback_days), settings)
    unusable = _unusable_need(need)
    if unusable is not None:
        evidence = Evidence(strategy.name, settings.lookback_days, coverage, span, samples)
        return Recommendation.undetermined(unusable, current_type=current_type, evidence=evidence)
    cpu_trend = mem_trend = None
    if settings.trend_blocks_downsize:
        cpu_trend, mem_trend = trends if trends is not None else history_trends(
            window if window is not None else history.window(settings.lookback_days), settings)
    sizing = _initial_sizing(need, spec)
    sizing.cpu_need = _vcpu_floor(sizing.cpu_need, sizing.mem_need, need, spec, catalogue, sizing.reasons)
    types = catalogue.fitting(sizing.cpu_need, math.ceil(sizing.mem_need), n=3)
    if types:
        _block_growing(sizing, need, spec, types[0], cpu_trend, mem_trend)
    _add_peak_risk(sizing, need, span)
    mem_need_bytes = int(math.ceil(sizing.mem_need))
    if sizing.blocked:
        types = catalogue.fitting(sizing.cpu_need, mem_need_bytes, n=3)
    current_month = current_type.price_per_month if current_type is not None else math.nan
    options, threshold = _priced_options(types, current_type, settings)
    evidence = Evidence(
        strategy.name, settings.lookback_days, coverage, span, samples, cpu=need.cpu, memory=need.memory,
        cpu_trend=cpu_trend, memory_trend=mem_trend,
        min_savings_per_month=threshold if current_type is not None else None,
    )
    under = sizing.cpu_need > spec.vcpus + _EPS_VCPUS or mem_need_bytes > spec.memory_bytes
    finding, recommended = _verdict(sizing, under, types[0] if types else None, current_type, threshold)
    savings = (current_month - recommended.price_per_month) if (recommended and current_type) else 0.0
    return Recommendation(
        finding=finding,
        target_vcpus=sizing.cpu_need,
        target_memory_bytes=mem_need_bytes,
        current_type=current_type,
        recommended_type=recommended,
        options=options,
        monthly_savings=savings,
        risk=min(sizing.risk, 4),
        reasons=sizing.reasons,
        evidence=evidence,
    )


def _coverage(window: UsageHistory) -> tuple[int, float, float]:
    """Samples with CPU data, the hours they cover and the days they span."""
    valid_ts = window.timestamps_s[window.valid_cpu()]
    samples = len(valid_ts)
    coverage = window.coverage_hours
    span = float(valid_ts[-1] - valid_ts[0] + window.interval_s) / SECONDS_PER_DAY if samples else 0.0
    return samples, coverage, span


def _priced_options(types: Sequence[MachineType], current_type: MachineType | None,
                    settings: StrategySettings) -> tuple[tuple[Option, ...], float]:
    """The options with their monthly saving vs the current type, and the saving a downsize needs."""
    if current_type is None:
        return tuple(Option(t, t.price_per_month, 0.0) for t in types), math.inf
    current_month = current_type.price_per_month
    options = tuple(Option(t, t.price_per_month, current_month - t.price_per_month) for t in types)
    return options, max(settings.min_savings_fraction * current_month, settings.min_monthly_savings)


def _initial_sizing(need: Need, spec: VmSpecLike) -> _Sizing:
    """The strategy's need with its reasons; unknown memory keeps the allocation (and adds risk)."""
    cpu_need = max(need.cpu.value, 0.0)
    reasons = {"cpu": (f"{need.cpu.statistic} {need.cpu.observed:.3f} vCPU + {need.cpu.headroom_fraction:.0%} "
                       f"headroom = {cpu_need:.3f} vCPU needed; {spec.vcpus} allocated; "
                       f"peak {need.cpu.peak:.3f} vCPU")}
    if need.memory is None:
        reasons["memory"] = f"{need.memory_note}: never downsized; {_fmt_bytes(spec.memory_bytes)} kept"
        return _Sizing(cpu_need, float(spec.memory_bytes), reasons, risk=1)
    mem_need = max(need.memory.value, 0.0)
    reasons["memory"] = (f"{need.memory.statistic} {_fmt_bytes(need.memory.observed)} + "
                         f"{need.memory.headroom_fraction:.0%} headroom = {_fmt_bytes(mem_need)} needed; "
                         f"{_fmt_bytes(spec.memory_bytes)} allocated")
    return _Sizing(cpu_need, mem_need, reasons)


def _block_growing(sizing: _Sizing, need: Need, spec: VmSpecLike, best: MachineType,
                   cpu_trend: Trend | None, mem_trend: Trend | None) -> None:
    """Keep a dimension at its allocation when a growing trend would outgrow ``best`` within a lookback."""
    if (cpu_trend is not None and cpu_trend.growing and sizing.cpu_need < spec.vcpus
            and cpu_trend.projected * (1 + need.cpu.headroom_fraction) > best.vcpus):
        sizing.cpu_need = float(spec.vcpus)
        sizing.reasons["cpu"] += (f"; growing {cpu_trend.slope_per_day:+.3f} vCPU/day, daily p95 projected to "
                                  f"{cpu_trend.projected:.3f} vCPU in {cpu_trend.horizon_days:g} days: downsize "
                                  "blocked")
        sizing.risk += 1
        sizing.blocked = True
    if (mem_trend is not None and need.memory is not None and mem_trend.growing
            and sizing.mem_need < spec.memory_bytes
            and mem_trend.projected * (1 + need.memory.headroom_fraction) > best.memory_bytes):
        sizing.mem_need = float(spec.memory_bytes)
        sizing.reasons["memory"] += (f"; growing {_fmt_bytes(mem_trend.slope_per_day)}/day, daily p95 projected "
                                     f"to {_fmt_bytes(mem_trend.projected)} in {mem_trend.horizon_days:g} days: "
                                     "downsize blocked")
        sizing.risk += 1
        sizing.blocked = True


def _add_peak_risk(sizing: _Sizing, need: Need, span_days: float) -> None:
    """Risk from sizing below observed peaks and from a short history."""
    if sizing.cpu_need < need.cpu.peak:
        sizing.risk += 1 if sizing.cpu_need >= 0.8 * need.cpu.peak else 2
    if need.memory is not None and sizing.mem_need < need.memory.peak:
        sizing.risk += 2
    if span_days < 7:
        sizing.risk += 1


def _verdict(sizing: _Sizing, under: bool, best: MachineType | None, current_type: MachineType | None,
             threshold: float) -> tuple[Finding, MachineType | None]:
    """The finding and the type to run; sets the overall reason (and zero risk when nothing changes)."""
    reasons = sizing.reasons
    if under:
        if best is None:
            reasons["overall"] = "needs more than the largest eligible machine type; keep the current type"
            return Finding.UNDER_PROVISIONED, current_type
        reasons["overall"] = f"demand exceeds the allocation; {best.name} covers it"
        return Finding.UNDER_PROVISIONED, best
    if best is None or current_type is None or best.price_per_month >= current_type.price_per_month:
        sizing.risk = 0
        reasons["overall"] = "the current type is the cheapest that covers the need"
        return Finding.OPTIMIZED, current_type
    currency = current_type.currency
    saving = current_type.price_per_month - best.price_per_month
    if saving >= threshold:
        reasons["overall"] = (f"{best.name} covers the need and saves {_fmt_money(saving, currency)}/month "
                              f"(threshold {_fmt_money(threshold, currency)})")
        return Finding.OVER_PROVISIONED, best
    reasons["overall"] = (f"cheapest fitting {best.name} would save only {_fmt_money(saving, currency)}"
                          f"/month, below the threshold {_fmt_money(threshold, currency)}")
    sizing.risk = 0
    return Finding.OPTIMIZED, current_type


@dataclass(frozen=True, slots=True)
class ResolvedPolicy:
    """The overrides that apply to one VM, whether it is excluded, and which policies said so."""

    overrides: Mapping[str, float]
    exclude: bool
    sources: tuple[str, ...]
    profile: str | None = None  # our strategy's profile (the anchors ignore it)


def resolve_policy(
    policies: Sequence[Policy], *, uuid: str, name: str, labels: Mapping[str, str]
) -> ResolvedPolicy:
    """Merge the policies that match a VM: label policies in order, then VM policies (most specific wins).

    The ``rightsizer_exclude=true`` label excludes a VM whatever the policies say.
    """
    matching = [p for p in policies if p.matches(uuid=uuid, name=name, labels=labels)]
    matching.sort(key=lambda p: p.vm is not None)  # stable: label policies first, then per-VM ones
    overrides: dict[str, float] = {}
    exclude = False
    profile: str | None = None
    sources: list[str] = []
    for p in matching:
        if p.profile is not None:
            profile = p.profile
        for key in ("cpu_percentile", "cpu_headroom_fraction", "memory_headroom_fraction", "lookback_days"):
            value = getattr(p, key)
            if value is not None:
                overrides[key] = value
        if p.exclude is not None:
            exclude = p.exclude
        sources.append(f"vm={p.vm}" if p.vm is not None else
                       "labels " + ",".join(f"{k}={v}" for k, v in sorted(p.labels.items())))
    if is_excluded(labels):
        exclude = True
        sources.append(f"label {EXCLUDE_LABEL}=true")
    return ResolvedPolicy(overrides, exclude, tuple(sources), profile)


def apply_overrides(settings: StrategySettings, overrides: Mapping[str, float],
                    profile: str | None = None) -> StrategySettings:
    """A copy of ``settings`` with a profile (our strategy only) and the overrides, validated.

    Raises pydantic.ValidationError when an override is out of bounds.
    """
    merged: dict[str, float | bool | None] = {}
    if profile is not None and isinstance(settings, RightsizerSettings):
        merged.update(profile_overrides(profile))
    merged.update(overrides)
    if isinstance(settings, RightsizerSettings):
        # a policy's own CPU percentile/headroom or memory headroom sizes that dimension by the percentile
        # rule, not the calibrated one it would otherwise silently replace
        if "cpu_percentile" in overrides or "cpu_headroom_fraction" in overrides:
            merged["cpu_risk_pct"] = None
        if "memory_headroom_fraction" in overrides:
            merged["memory_risk_pct"] = None
    if not merged:
        return settings
    return type(settings).model_validate({**settings.model_dump(), **merged})


def exclude_recommendation(rec: Recommendation, sources: Sequence[str]) -> Recommendation:
    """The recommendation with ``excluded`` set: shown with its evidence, but no resize is proposed."""
    reasons = dict(rec.reasons)
    reasons["policy"] = "excluded from resizing by " + "; ".join(sources)
    return replace(rec, excluded=True, reasons=reasons)
