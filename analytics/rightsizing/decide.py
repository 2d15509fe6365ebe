"""The decision every strategy shares: from a need to a finding, a type, options and reasons (DESIGN.md's
right-sizing rules: data sufficiency, unknown memory never downsized, the savings threshold, growing trends)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from analytics.catalogue import MachineType
from analytics.rightsizing.base import (
    _EPS_VCPUS,
    GIB,
    SECONDS_PER_DAY,
    Evidence,
    Finding,
    FittingCatalogue,
    Option,
    Recommendation,
    UsageHistory,
    VmSpecLike,
)
from analytics.rightsizing.needs import Need, PreparedNeed
from analytics.rightsizing.settings import StrategySettings
from analytics.trend import Trend, daily_quantiles, fit_trend

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
    reasons = {"cpu": (f"{need.cpu.statistic} {need.cpu.observed:.3f} vCPU {_headroom(need.cpu.headroom_fraction)} "
                       f"= {cpu_need:.3f} vCPU needed; {spec.vcpus} allocated; "
                       f"peak {need.cpu.peak:.3f} vCPU")}
    if need.memory is None:
        reasons["memory"] = f"{need.memory_note}: never downsized; {_fmt_bytes(spec.memory_bytes)} kept"
        return _Sizing(cpu_need, float(spec.memory_bytes), reasons, risk=1)
    mem_need = max(need.memory.value, 0.0)
    reasons["memory"] = (f"{need.memory.statistic} {_fmt_bytes(need.memory.observed)} "
                         f"{_headroom(need.memory.headroom_fraction)} = {_fmt_bytes(mem_need)} needed; "
                         f"{_fmt_bytes(spec.memory_bytes)} allocated")
    return _Sizing(cpu_need, mem_need, reasons)


def _headroom(fraction: float) -> str:
    """"+ 15% headroom", or for a need below its statistic (memory traded) "- 70% (sized below it)"."""
    return f"+ {fraction:.0%} headroom" if fraction >= 0 else f"- {-fraction:.0%} (sized below it)"


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
