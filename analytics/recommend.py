"""Fleet right-sizing: store frames in, one finding per VM out (also usable as a resize plan).

The fleet path reads the **hourly rollups** (``store.frame(..., resolution="hour")``), not raw samples, so
5,000 VMs x 14 days is 1.7 M rows instead of 20 M. Each VM's history is then:

* ``cpu_vcpus`` = the hour's ``cpu_p95_vcpus``: percentile strategies (``aws``, ``krr``, ``vpa``) take
  their percentile over hourly p95 values. For percentiles at or above 95 this sits at or slightly above
  the same percentile of the raw 5-minute samples (each hour is represented by its own p95), i.e. the
  approximation errs towards larger sizes;
* ``cpu_peak_vcpus`` = the hour's ``cpu_max_vcpus``: exact, so our default (which works on hourly peaks)
  gives the same answer on rollups as on raw samples;
* ``memory_used_bytes`` = the hour's ``memory_used_max_bytes``: the maximum over the lookback is exact;
  VPA's daily peaks are exact too;
* coverage counts an hour with any CPU data as one hour of data.

The current machine type comes from the VM's ``machine_type`` label when the catalogue knows it, else
the cheapest eligible type that fits its allocation (``current_type_source`` says which). Trends for
the whole fleet are fitted in one vectorised pass (:func:`analytics.trend.theil_sen`).
"""

from __future__ import annotations

import functools
import gc
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

import numpy as np
import pandas as pd

from analytics.catalogue import HOURS_PER_MONTH, MachineType, StoragePrices, load_storage_prices
from analytics.costs import COST_INPUT_COLUMNS, fleet_costs
from analytics.findings.lifecycle import DELETE_IS_MANUAL, StoppedVm, find_stopped
from analytics.findings.projection import Projection, project_fleet, project_utilisation
from analytics.findings.regret import Regret, find_regrets, monthly_cost_change, resizes_in_force
from analytics.findings.risk import NO_CHANGE, Risk, RiskFacts, RiskLevel, assess_risk
from analytics.fleet import resolve_machine_type
from analytics.frames import appearance_codes, epoch_ns, group_percentile, numeric_column, rows_since
from analytics.idle import IdleFinding, find_idle
from analytics.patterns import FleetPatterns, fit_patterns, prefetch_clustering
from analytics.rightsizing import DEFAULT_STRATEGY, get_strategy
from analytics.rightsizing.base import (
    SECONDS_PER_DAY,
    Finding,
    FittingCatalogue,
    Recommendation,
    UsageHistory,
    apply_overrides,
    decide,
    exclude_recommendation,
    resolve_policy,
)
from analytics.rightsizing.batch import FleetColumns, fleet_needs
from analytics.rightsizing.settings import Policy, RightsizerSettings, StrategySettings, profile_settings
from analytics.schedules import ScheduleProposal, propose_fleet
from analytics.signals import (
    ContentionSignal,
    PressureSignal,
    StorageAdvice,
    StorageRules,
    add_pressure_reasons,
    add_storage_advice,
    apply_contention,
    contention_signals,
    memory_under_pressure,
    pressure_signals,
    storage_advice,
)
from analytics.trend import Trend, theil_sen, trend_from_fit
from collector.actions.plan import RESIZE_FINDINGS, ResizeStep, SizeSpec
from collector.config import CostSettings, IdleSettings, ScheduleSettings, Settings, SignalSettings
from collector.model import VmRecord, VmRef, VmState
from collector.store.base import TimeSeriesStore

GIB = 1024**3


class FleetCatalogue(FittingCatalogue, Protocol):
    """What the fleet path needs from a catalogue: fitting plus lookup by name (``CsvPriceCatalogue``)."""

    def get(self, name: str) -> MachineType | None: ...

    def machine_types(self) -> Sequence[MachineType]: ...


@dataclass(frozen=True, slots=True)
class VmFinding:
    """One VM's right-sizing verdict with everything a report, dashboard or resize plan needs.

    Prices are per hour in ``currency``; ``monthly_savings`` uses 720 h per month and is 0 when the VM is
    excluded or no change is advised. ``target_*`` are the recommended type's capacity, ``need_*`` what
    the strategy computed.
    """

    uuid: str
    name: str
    uri: str
    host: str
    strategy: str
    finding: Finding
    current_type: str | None
    current_type_source: str
    current_vcpus: int
    current_memory_bytes: int
    need_vcpus: float | None
    need_memory_bytes: int | None
    target_type: str | None
    target_vcpus: int | None
    target_memory_bytes: int | None
    price_before_per_hour: float | None
    price_after_per_hour: float | None
    currency: str
    monthly_savings: float
    risk: RiskLevel
    excluded: bool
    reasons: Mapping[str, str]
    options: tuple[Mapping[str, Any], ...]
    recommendation: Recommendation = field(repr=False, compare=False)
    idle: IdleFinding | None = field(default=None, repr=False, compare=False)
    action: str = "none"  # resize | stop | none (what a plan would do; deleting is never planned)
    savings_pct: float = 0.0  # monthly_savings as a share of what the VM costs now, percent
    risk_reasons: tuple[str, ...] = ()
    need_cpu_statistic: str = ""
    need_memory_statistic: str = ""
    projection: Projection | None = field(default=None, repr=False, compare=False)
    stopped: StoppedVm | None = field(default=None, repr=False, compare=False)
    regret: Regret | None = field(default=None, repr=False, compare=False)
    pattern: str = "unknown"
    schedule: ScheduleProposal | None = None
    storage: StorageAdvice | None = None  # volume class and capacity advice (all disks together)
    #: At its type's size, with a persistent maximum memory an older downsize left above it: the plan gets a
    #: step to the same size that only lowers ``<memory>`` (effective at next restart).
    lowers_max_memory: bool = False

    @property
    def is_actionable(self) -> bool:
        """True when a plan has a step for this VM (a resize, or a stop)."""
        return self.action in ("resize", "stop") and not self.excluded

    @property
    def combined_monthly_savings(self) -> float:
        """The resize's saving plus the schedule's (priced after the resize, so no hour counts twice)."""
        resize = self.monthly_savings if self.changes_type else 0.0
        return resize + (self.schedule.monthly_savings if self.schedule is not None else 0.0)

    @property
    def changes_type(self) -> bool:
        return (not self.excluded and self.target_type is not None and self.current_type is not None
                and self.target_type != self.current_type)

    def row(self) -> dict[str, Any]:
        """Flat row for table/CSV output."""
        return {
            "name": self.name,
            "finding": self.finding.value,
            "current_type": self.current_type,
            "type_source": self.current_type_source,
            "vcpus": self.current_vcpus,
            "memory_gib": round(self.current_memory_bytes / GIB, 2),
            "need_vcpus": None if self.need_vcpus is None else round(self.need_vcpus, 3),
            "need_memory_gib": None if self.need_memory_bytes is None else round(self.need_memory_bytes / GIB, 2),
            "target_type": self.target_type,
            "price_before_per_hour": self.price_before_per_hour,
            "price_after_per_hour": self.price_after_per_hour,
            "monthly_savings": round(self.monthly_savings, 2),
            "savings_pct": round(self.savings_pct, 1),
            "currency": self.currency,
            "action": self.action,
            "risk": self.risk.value,
            "excluded": self.excluded,
            "reason": self.reasons.get("overall", ""),
            "pattern": self.pattern,
            "schedule": self.schedule.on if self.schedule is not None else "",
            "schedule_savings": round(self.schedule.monthly_savings, 2) if self.schedule is not None else 0.0,
            "storage_class": self.storage.recommended_class if self.storage is not None else "",
            "storage_savings": round(self.storage.monthly_savings, 2) if self.storage is not None else 0.0,
            "uuid": self.uuid,
        }

    def resize_step(self, default_uri: str = "") -> ResizeStep | None:
        """The resize this finding proposes as the plan's own value type; None when it proposes none.

        Only findings whose action is a resize (over-/under-provisioned, resize-regret), not excluded,
        whose target size differs get a step; and a VM whose persistent maximum memory is left above its
        type's memory gets a step to the size it has, which lowers only that maximum. The VM's URI is
        ``default_uri`` when the store recorded none.
        """
        if self.lowers_max_memory and self.current_type and not self.excluded:
            size = SizeSpec(self.current_vcpus, self.current_memory_bytes, self.current_type)
            return ResizeStep(vm=VmRef(uri=self.uri or default_uri, uuid=self.uuid, name=self.name), current=size,
                              target=size, price_before_per_hour=self.price_before_per_hour,
                              price_after_per_hour=self.price_before_per_hour, currency=self.currency,
                              finding=self.finding.value)
        if (self.action != "resize" or self.finding.value not in RESIZE_FINDINGS or self.excluded
                or self.target_vcpus is None or self.target_memory_bytes is None):
            return None
        if self.target_vcpus == self.current_vcpus and self.target_memory_bytes == self.current_memory_bytes:
            return None
        return ResizeStep(
            vm=VmRef(uri=self.uri or default_uri, uuid=self.uuid, name=self.name),
            current=SizeSpec(self.current_vcpus, self.current_memory_bytes, self.current_type or ""),
            target=SizeSpec(self.target_vcpus, self.target_memory_bytes, self.target_type or ""),
            price_before_per_hour=self.price_before_per_hour,
            price_after_per_hour=self.price_after_per_hour,
            currency=self.currency,
            finding=self.finding.value,
        )

    def plan_entry(self) -> dict[str, Any]:
        """JSON object for a resize plan: identity, before, after, prices, finding and reasons."""
        return {
            "uuid": self.uuid,
            "name": self.name,
            "uri": self.uri,
            "host": self.host,
            "finding": self.finding.value,
            "strategy": self.strategy,
            "excluded": self.excluded,
            "current": {
                "machine_type": self.current_type,
                "type_source": self.current_type_source,
                "vcpus": self.current_vcpus,
                "memory_bytes": self.current_memory_bytes,
            },
            "target": {
                "machine_type": self.target_type,
                "vcpus": self.target_vcpus,
                "memory_bytes": self.target_memory_bytes,
            },
            "need": {"vcpus": self.need_vcpus, "memory_bytes": self.need_memory_bytes,
                     "cpu_statistic": self.need_cpu_statistic, "memory_statistic": self.need_memory_statistic},
            "action": self.action,
            "price_before_per_hour": self.price_before_per_hour,
            "price_after_per_hour": self.price_after_per_hour,
            "currency": self.currency,
            "monthly_savings": round(self.monthly_savings, 4),
            "savings_pct": round(self.savings_pct, 2),
            "hours_per_month": HOURS_PER_MONTH,
            "risk": self.risk.value,
            "risk_reasons": list(self.risk_reasons),
            "projected": None if self.projection is None else {
                "hours": self.projection.hours,
                "hours_cpu_over_100_pct": self.projection.hours_cpu_over,
                "hours_memory_over_90_pct": self.projection.hours_memory_over,
            },
            "reasons": dict(self.reasons),
            "options": list(self.options),
            "pattern": self.pattern,
            "storage": self.storage.as_json() if self.storage is not None else None,
            "lowers_max_memory": self.lowers_max_memory,
            **({"schedule": self.schedule.as_json(),
                "combined_monthly_savings": round(self.combined_monthly_savings, 4)} if self.schedule else {}),
        }


def recommend_fleet(
    store: TimeSeriesStore,
    catalogue: FleetCatalogue,
    *,
    strategy: str = DEFAULT_STRATEGY,
    now: datetime,
    lookback_days: float = 14.0,
    policies: Sequence[Policy] | None = None,
    settings: StrategySettings | None = None,
    idle_settings: IdleSettings | None = None,
    min_monthly_savings: float | None = None,
    schedule_settings: ScheduleSettings | None = None,
    rules: LifecycleRules | None = None,
    profile: str | None = None,
    signal_settings: SignalSettings | None = None,
) -> list[VmFinding]:
    """Recommend a size for every VM the store knows, from the hourly rollups of the last lookback.

    ``now`` must be timezone-aware. ``settings`` replaces the strategy's defaults (then ``lookback_days``
    and ``min_monthly_savings`` are ignored). ``idle_settings`` turns on idle detection
    (:func:`analytics.idle.find_idle`); idle VMs get the finding ``idle``. ``rules`` turns on the
    lifecycle findings (``stopped``, ``resize-regret``; see :func:`lifecycle_for`). Raises KeyError for an
    unknown strategy and ValueError for a naive ``now``. ``profile`` picks our strategy's profile
    (when ``settings`` is None).
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (UTC), got {now!r}")
    policies = list(policies or ())
    lookback = lookback_days if settings is None else settings.lookback_days
    longest = max([lookback] + [p.lookback_days for p in policies if p.lookback_days is not None])
    start = now - pd.Timedelta(days=longest).to_pytimedelta()
    frame = store.frame(start, now, resolution="hour")
    vms = store.vms()
    lifecycle = lifecycle_for(store, vms, catalogue, rules, now=now, lookback_days=lookback) \
        if rules is not None else None
    return recommend_frame(
        frame, vms, catalogue, strategy=strategy, now=now, lookback_days=lookback_days,
        policies=policies, settings=settings, idle_settings=idle_settings,
        min_monthly_savings=min_monthly_savings, schedule_settings=schedule_settings, lifecycle=lifecycle,
        profile=profile, signal_settings=signal_settings,
        storage=storage_rules(store, rules) if rules is not None else None,
    )


def storage_rules(store: TimeSeriesStore, rules: LifecycleRules) -> StorageRules | None:
    """Storage advice inputs: the billed class and prices, and the guest agent's filesystem use in ``store``.

    None when storage is not priced (``[costs] include_storage = false`` or another currency).
    """
    from collector.guestfs import stored_usage

    if not rules.cost_settings.include_storage:
        return None
    used = {uuid: float(u.used_bytes) for uuid, u in stored_usage(store).items()}
    return StorageRules(rules.storage, rules.cost_settings.storage_class, used)


@dataclass(frozen=True, slots=True)
class LifecycleRules:
    """How stopped VMs are found and priced (``[rightsizing] stopped_after``, ``[costs]``)."""

    stopped_after_days: float
    cost_settings: CostSettings
    storage: StoragePrices


def lifecycle_for(
    store: TimeSeriesStore, vms: Sequence[VmRecord], catalogue: FleetCatalogue, rules: LifecycleRules, *,
    now: datetime, lookback_days: float,
) -> Lifecycle:
    """Stopped VMs (priced by the billing rule) and regrets of the resizes in the audit log.

    Shut-off VMs are read over at least 30 days (or ``stopped_after``), so the verdict does not depend on
    the lookback;
    each resize in force is watched for ``lookback_days`` after it was applied.
    """
    off = [vm for vm in vms if vm.state is VmState.SHUTOFF]
    stopped: Mapping[str, StoppedVm] = {}
    shut_off: Mapping[str, StoppedVm] = {}
    if off:
        days = max(rules.stopped_after_days, lookback_days, 30.0) + 1.0  # few VMs: read enough to date it
        since = now - pd.Timedelta(days=days).to_pytimedelta()
        rows = store.frame(since, now, resolution="hour", vms=[vm.uuid for vm in off],
                           columns=COST_INPUT_COLUMNS)  # all fleet_costs reads
        costs = fleet_costs(rows, off, catalogue, rules.storage, rules.cost_settings, now=now)
        every_off = find_stopped(costs, off, now=now, stopped_after_days=0.0,
                                 billing_rule=rules.cost_settings.stopped_vm_billing)
        stopped = {u: s for u, s in every_off.items() if s.stopped_days >= rules.stopped_after_days}
        shut_off = {u: s for u, s in every_off.items() if u not in stopped}
    resizes = resizes_in_force(store.audit())
    regrets: Mapping[str, Regret] = {}
    if resizes:
        since = min(r.applied_at for r in resizes) - pd.Timedelta(hours=1).to_pytimedelta()
        watched = store.frame(since, now, resolution="hour", vms=[r.vm_uuid for r in resizes])
        regrets = find_regrets(resizes, watched, catalogue, now=now, watch_days=lookback_days)
    return Lifecycle(stopped=stopped, regrets=regrets, shut_off=shut_off)


@dataclass(frozen=True, slots=True)
class _Series:
    ts_s: np.ndarray
    cpu_p95: np.ndarray
    cpu_max: np.ndarray
    mem_max: np.ndarray
    running_s: np.ndarray | None = None  # seconds of each hour the samples cover (NaN/None: unknown)


@dataclass(frozen=True, slots=True)
class _Columns:
    """The hourly frame as arrays sorted by (VM, hour); ``bounds[i]:bounds[i+1]`` is VM ``names[i]``."""

    names: list[str]
    codes: np.ndarray
    bounds: np.ndarray
    ts_s: np.ndarray
    cpu_p95: np.ndarray
    cpu_max: np.ndarray
    mem_max: np.ndarray
    running_s: np.ndarray

    def series(self) -> dict[str, _Series]:
        out: dict[str, _Series] = {}
        for i in range(len(self.bounds) - 1):
            a, b = self.bounds[i], self.bounds[i + 1]
            out[self.names[int(self.codes[a])]] = _Series(
                self.ts_s[a:b], self.cpu_p95[a:b], self.cpu_max[a:b], self.mem_max[a:b], self.running_s[a:b])
        return out


def _epoch_s(values: pd.Series) -> np.ndarray:
    """Epoch seconds (float64) of timestamps; naive values are taken as UTC."""
    seconds: np.ndarray = epoch_ns(values) / 1e9
    return seconds


def _columns(frame: pd.DataFrame) -> _Columns:
    if frame.empty:
        empty = np.empty(0)
        return _Columns([], np.empty(0, dtype=np.int64), np.zeros(1, dtype=np.int64), empty, empty, empty, empty,
                        empty)
    vm_codes, vm_names = appearance_codes(frame["vm"])
    ts_s = _epoch_s(frame["ts"])

    def column(name: str) -> np.ndarray:
        return numeric_column(frame, name)  # float64, NaN for missing or non-numeric cells

    # Stores return rows grouped by VM in time order; sort only when they are not.
    later = ts_s[1:] > ts_s[:-1]
    later |= vm_codes[1:] != vm_codes[:-1]  # time order is checked within a VM only
    ordered = bool(np.all(vm_codes[1:] >= vm_codes[:-1])) and bool(later.all())
    order = slice(None) if ordered else np.lexsort((ts_s, vm_codes))
    codes = vm_codes[order]
    change = np.ones(len(codes) + 1, dtype=bool)
    np.not_equal(codes[1:], codes[:-1], out=change[1:-1])
    return _Columns(
        [str(v) for v in vm_names], codes, np.flatnonzero(change), ts_s[order], column("cpu_p95_vcpus")[order],
        column("cpu_max_vcpus")[order], column("memory_used_max_bytes")[order], column("running_s")[order],
    )


def fleet_trends(
    cols: _Columns, *, end_s: float, lookback_days: float, growth_fraction: float
) -> dict[str, tuple[Trend | None, Trend | None]]:
    """CPU and memory trends of every VM in one vectorised pass (same rule as ``history_trends``).

    Daily p95 of hourly peaks over the lookback, Theil-Sen slope, Mann-Kendall test, projected over one
    more lookback.
    """
    keep = (cols.ts_s >= end_s - lookback_days * SECONDS_PER_DAY) & ~np.isnan(cols.cpu_p95)
    if not keep.any():
        return {}
    data = pd.DataFrame({"vm": cols.codes[keep], "day": np.floor(cols.ts_s[keep] / SECONDS_PER_DAY),
                         "cpu": cols.cpu_max[keep], "mem": cols.mem_max[keep]})
    daily = data.groupby(["vm", "day"], sort=True)[["cpu", "mem"]].quantile(0.95)
    cpu_m = daily["cpu"].unstack("day")
    mem_m = daily["mem"].unstack("day").reindex(index=cpu_m.index, columns=cpu_m.columns)
    days = cpu_m.columns.to_numpy(dtype=np.float64)

    def fit(values: np.ndarray) -> list[Trend | None]:
        slope, intercept, z, n = theil_sen(days, values)
        valid = ~np.isnan(values)
        last = days[valid.shape[1] - 1 - np.argmax(valid[:, ::-1], axis=1)]
        return [trend_from_fit(float(slope[i]), float(intercept[i]), float(z[i]), int(n[i]),
                               last_day=float(last[i]), horizon_days=lookback_days,
                               growth_fraction=growth_fraction)
                for i in range(len(values))]

    cpu_t = fit(cpu_m.to_numpy(dtype=np.float64))
    mem_t = fit(mem_m.to_numpy(dtype=np.float64))
    return {cols.names[int(code)]: (cpu_t[i], mem_t[i]) for i, code in enumerate(cpu_m.index)}


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _without_cyclic_gc(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """``func`` with Python's cyclic garbage collector paused while it runs (reference counting goes on).

    The fleet path makes hundreds of thousands of small objects that live on (findings, reasons, options);
    each automatic collection rescans all of them, which on 50,000 VMs costs seconds and frees nothing.
    """

    @functools.wraps(func)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if not gc.isenabled():
            return func(*args, **kwargs)
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            gc.enable()

    return run


@_without_cyclic_gc
def recommend_frame(
    frame: pd.DataFrame,
    vms: Sequence[VmRecord],
    catalogue: FleetCatalogue,
    *,
    strategy: str = DEFAULT_STRATEGY,
    now: datetime,
    lookback_days: float = 14.0,
    policies: Sequence[Policy] | None = None,
    settings: StrategySettings | None = None,
    idle_settings: IdleSettings | None = None,
    min_monthly_savings: float | None = None,
    schedule_settings: ScheduleSettings | None = None,
    lifecycle: Lifecycle | None = None,
    profile: str | None = None,
    signal_settings: SignalSettings | None = None,
    storage: StorageRules | None = None,
) -> list[VmFinding]:
    """:func:`recommend_fleet` on an hourly frame already read (columns per ``collector.store.base``).

    With ``signal_settings``, contention and memory pressure shape the findings; with ``storage`` too,
    every VM with a known disk capacity gets storage advice (:func:`analytics.signals.storage_advice`).

    ``lifecycle`` names stopped VMs and resize regrets (they take precedence over the size finding).
    Every finding also carries the VM's workload pattern and, where one fits, a schedule proposal
    (:mod:`analytics.patterns`, :mod:`analytics.schedules`; ``schedule_settings`` default: ``[schedules]``
    defaults).
    """
    if not frame.empty:
        prefetch_clustering()  # the patterns below fit k-means: its import overlaps the work before it
    chosen = get_strategy(strategy)
    if settings is None:
        update: dict[str, Any] = {"lookback_days": lookback_days}
        if profile is not None and chosen.settings_type is RightsizerSettings:
            update = {**profile_settings(profile), **update}
        if min_monthly_savings is not None:
            update["min_monthly_savings"] = min_monthly_savings
        settings = chosen.settings_type.model_validate(update)
    end_s = now.timestamp()
    cols = _columns(frame)
    series = cols.series()
    trends: dict[str, tuple[Trend | None, Trend | None]] = {}
    if settings.trend_blocks_downsize:
        trends = fleet_trends(cols, end_s=end_s, lookback_days=settings.lookback_days,
                              growth_fraction=settings.trend_growth_fraction)
    idle: dict[str, IdleFinding] = {}
    if idle_settings is not None and not frame.empty:
        start = pd.Timestamp(now) - pd.Timedelta(days=settings.lookback_days)
        idle = find_idle(rows_since(frame, start), idle_settings)
    empty = _Series(np.empty(0), np.empty(0), np.empty(0), np.empty(0))
    contention: dict[str, ContentionSignal] = {}
    pressure: dict[str, PressureSignal] = {}
    if signal_settings is not None:
        contention = contention_signals(frame, vms, signal_settings, now=pd.Timestamp(now),
                                        lookback_days=settings.lookback_days)
        pressure = pressure_signals(frame, signal_settings, now=pd.Timestamp(now),
                                    lookback_days=settings.lookback_days)
    peak_ratios = fleet_peak_ratios(cols, end_s=end_s, lookback_days=settings.lookback_days)
    histories = [_history(vm, series.get(vm.uuid, empty), pressure.get(vm.uuid), end_s) for vm in vms]
    settings = chosen.fleet_settings(histories, settings)  # ours: margins calibrated on the whole fleet
    prepared = fleet_needs(FleetColumns(len(cols.names), cols.codes, cols.ts_s, cols.cpu_p95, cols.cpu_max,
                                        cols.mem_max, cols.running_s), chosen, settings, end_s=end_s)
    code_of = {name: i for i, name in enumerate(cols.names)} if prepared is not None else {}
    recent = rows_since(frame, pd.Timestamp(now) - pd.Timedelta(days=settings.lookback_days))
    schedules = schedule_settings or ScheduleSettings()
    # patterns are fitted before the findings are made, so each finding is made with its own
    patterns = fit_vm_patterns(recent, schedules, idle_settings or IdleSettings())
    decided: list[tuple[Recommendation, str, float]] = []
    for vm, history in zip(vms, histories, strict=True):
        current, source = resolve_machine_type(vm, catalogue)
        resolved = resolve_policy(policies or (), uuid=vm.uuid, name=vm.name, labels=vm.labels or {})
        vm_settings = apply_overrides(settings, resolved.overrides, resolved.profile)
        s = series.get(vm.uuid, empty)
        same_window = vm_settings.lookback_days == settings.lookback_days
        code = code_of.get(vm.uuid)
        # the fleet-wide window stands for this VM's when its settings and memory series are the fleet's
        ready = (prepared[code] if prepared is not None and code is not None and vm_settings is settings
                 and history.memory_used_bytes is s.mem_max else None)
        rec = decide(
            chosen, history, vm, vm_settings, catalogue=catalogue, current_type=current,
            trends=trends.get(vm.uuid, (None, None)) if same_window and settings.trend_blocks_downsize else None,
            prepared=ready,
        )
        if resolved.exclude:
            rec = exclude_recommendation(rec, resolved.sources)
        decided.append((rec, source, vm_settings.lookback_days))
    replays = fleet_replays(cols, vms, decided, end_s=end_s)
    findings: list[VmFinding] = []
    for vm, (rec, type_source, vm_lookback) in zip(vms, decided, strict=True):
        same_window = vm_lookback == settings.lookback_days
        findings.append(_finding(vm, chosen.name, rec, type_source, idle.get(vm.uuid),
                                 series=series.get(vm.uuid, empty),
                                 lookback_days=vm_lookback, end_s=end_s, lifecycle=lifecycle or Lifecycle(),
                                 pattern=patterns.pattern_of(vm.uuid), replay=replays.get(vm.uuid),
                                 peak_ratio=peak_ratios.get(vm.uuid, math.nan) if same_window else None))
    findings = add_pressure_reasons(apply_contention(findings, contention), pressure)
    if signal_settings is not None and storage is not None:
        advice = storage_advice(frame, vms, storage.prices, storage.current_class, signal_settings,
                                now=pd.Timestamp(now), lookback_days=settings.lookback_days,
                                guest_fs_used=storage.guest_fs_used_bytes)
        findings = add_storage_advice(findings, advice)
    return with_schedules(
        findings, recent, vms, schedules, idle_settings or IdleSettings(),
        lookback_days=settings.lookback_days, policies=policies or (), patterns=patterns,
    )


def _history(vm: VmRecord, s: _Series, pressure: PressureSignal | None, end_s: float) -> UsageHistory:
    """One VM's stored hourly history as the strategies read it (memory under pressure counts as full)."""
    return UsageHistory(
        timestamps_s=s.ts_s, cpu_vcpus=s.cpu_p95, vcpus=vm.vcpus,
        memory_used_bytes=memory_under_pressure(s.ts_s, s.mem_max, pressure, vm.memory_bytes),
        memory_bytes=vm.memory_bytes, interval_s=3600.0, cpu_peak_vcpus=s.cpu_max, end_s=end_s,
        covered_s=s.running_s,
    )


_NO_SCHEDULE_FINDINGS = frozenset({Finding.IDLE, Finding.INSUFFICIENT_DATA, Finding.STOPPED})


def with_schedules(
    findings: Sequence[VmFinding],
    frame: pd.DataFrame,
    vms: Sequence[VmRecord],
    schedule_settings: ScheduleSettings,
    idle_settings: IdleSettings,
    *,
    lookback_days: float,
    policies: Sequence[Policy] = (),
    patterns: FleetPatterns | None = None,
) -> list[VmFinding]:
    """The findings with each VM's pattern and schedule proposal (fitted once over the whole frame).

    ``patterns`` is :func:`analytics.patterns.fit_patterns` on ``frame`` when already fitted.
    """
    if patterns is None:
        patterns = fit_vm_patterns(frame, schedule_settings, idle_settings)
    prices: dict[str, tuple[float, str]] = {}
    for f in findings:
        price = f.price_after_per_hour if f.changes_type else f.price_before_per_hour
        if price is not None and f.finding not in _NO_SCHEDULE_FINDINGS:
            prices[f.uuid] = (price, f.currency)
    proposals = propose_fleet(
        frame, vms, patterns, prices, settings=schedule_settings, idle_vcpus=idle_settings.cpu_vcpus_below,
        lookback_days=lookback_days, excluded=frozenset(f.uuid for f in findings if f.excluded), policies=policies,
    )
    out: list[VmFinding] = []
    for f in findings:
        pattern, proposal = patterns.pattern_of(f.uuid), proposals.get(f.uuid)
        # a copy of a 40-field finding costs more than the rest of this loop: only for what changes
        same = f.pattern == pattern and f.schedule is None and proposal is None
        out.append(f if same else replace(f, pattern=pattern, schedule=proposal))
    return out


def fit_vm_patterns(frame: pd.DataFrame, schedule_settings: ScheduleSettings, idle_settings: IdleSettings
                    ) -> FleetPatterns:
    """Every VM's workload pattern on ``frame`` under the ``[schedules]`` zone and ``[idle]`` thresholds."""
    return fit_patterns(frame, timezone=schedule_settings.timezone, idle_vcpus=idle_settings.cpu_vcpus_below,
                        idle_share=idle_settings.share_of_time)


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """What the fleet path knows beside usage, by VM UUID: stopped VMs, resizes that overran, and VMs shut
    off now for less than ``stopped_after`` (their size advice is informational: nothing saved while off)."""

    stopped: Mapping[str, StoppedVm] = field(default_factory=dict)
    regrets: Mapping[str, Regret] = field(default_factory=dict)
    shut_off: Mapping[str, StoppedVm] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Verdict:
    """The parts of a finding the lifecycle rules decide (see :func:`_verdict`)."""

    finding: Finding
    action: str
    target: tuple[str, int, int, float] | None  # machine type, vCPUs, memory bytes, price per hour
    savings: float
    base: float  # what the saving is a share of, per month
    risk: Risk
    options: tuple[Mapping[str, Any], ...]
    reasons: Mapping[str, str]


def _option(t: MachineType, monthly_savings: float, action: str = "resize") -> dict[str, Any]:
    return {"action": action, "machine_type": t.name, "vcpus": t.vcpus, "memory_bytes": t.memory_bytes,
            "price_per_hour": t.price_per_hour, "price_per_month": round(t.price_per_month, 4),
            "monthly_savings": round(monthly_savings, 4)}


def _spec(t: MachineType | None) -> tuple[str, int, int, float] | None:
    return None if t is None else (t.name, t.vcpus, t.memory_bytes, t.price_per_hour)


def _verdict(
    rec: Recommendation, idle: IdleFinding | None, stopped: StoppedVm | None, regret: Regret | None,
    risk: Risk, currency: str,
) -> _Verdict:
    """Lifecycle before size: stopped, then resize regret, then idle, then the strategy's finding.

    A stopped VM is priced as what it still costs (deleting saves it); an idle one as its whole compute
    price (stopping saves it; the downsize stays as the fallback option); an over-provisioned VM whose
    saving is under the threshold is ``below-threshold``, not optimized.
    """
    current = rec.current_type
    month = current.price_per_month if current is not None else 0.0
    reasons = dict(rec.reasons)
    resize_options = tuple(_option(o.machine_type, o.monthly_savings) for o in rec.options)
    if stopped is not None:
        for key in ("cpu", "memory"):
            reasons.pop(key, None)
        reasons["overall"] = f"{stopped.reason(currency)}; no resize advice for a stopped VM"
        reasons["delete"] = DELETE_IS_MANUAL
        saving = stopped.monthly_cost
        options = tuple({"action": a, "monthly_savings": round(saving, 4), "note": DELETE_IS_MANUAL}
                        for a in ("snapshot-then-delete", "delete"))
        stop_risk = Risk(RiskLevel.LOW, 1, (f"not run for {stopped.stopped_days:.1f} days",
                                           "a deleted VM cannot be started again: snapshot first"))
        return _Verdict(Finding.STOPPED, "none", _spec(current), saving, saving, stop_risk, options, reasons)
    if regret is not None:
        extra = monthly_cost_change(regret) or 0.0
        reasons["overall"] = (f"the last resize overran: {regret.proposal} to {regret.target_type or '?'} "
                              f"({regret.target_vcpus} vCPU)")
        reasons["regret"] = regret.evidence()
        target = (regret.target_type, regret.target_vcpus, regret.target_memory_bytes,
                  regret.target_price_per_hour or 0.0)
        option = {"action": "resize", "machine_type": regret.target_type, "vcpus": regret.target_vcpus,
                  "memory_bytes": regret.target_memory_bytes, "price_per_hour": regret.target_price_per_hour,
                  "monthly_savings": round(-extra, 4), "proposal": regret.proposal}
        back = Risk(RiskLevel.VERY_LOW, 0, ("grows the VM to a size that covers what it used",))
        return _Verdict(Finding.RESIZE_REGRET, "resize", target, -extra, month, back, (option,), reasons)
    if idle is not None and rec.is_determined:
        share = idle.cpu_idle_share
        reasons["idle"] = (f"idle: CPU below {idle.cpu_threshold_vcpus:g} vCPU for "
                           f"{'?' if share is None else f'{share:.0%}'} of {idle.observed_days:.1f} running days; "
                           "consider stopping it")
        reasons["overall"] = f"idle: stopping it saves its whole compute price ({month:.2f} {currency}/month)"
        if rec.changes_type and rec.recommended_type is not None:
            reasons["fallback"] = f"if it must keep running: {rec.recommended_type.name} (downsize option)"
        stop = {"action": "stop", "machine_type": None, "monthly_savings": round(month, 4),
                "note": "stop only; " + DELETE_IS_MANUAL}
        downsizes = resize_options if rec.changes_type else ()
        idle_risk = Risk(RiskLevel.LOW, 1, ("stopping ends whatever the VM still serves",
                                           f"idle {'?' if share is None else f'{share:.0%}'} of its running time"))
        return _Verdict(Finding.IDLE, "stop", _spec(current), month, month, idle_risk, (stop, *downsizes), reasons)
    finding = rec.finding
    if (finding is Finding.OPTIMIZED and rec.options and current is not None
            and rec.options[0].machine_type.price_per_month < month):
        finding = Finding.BELOW_THRESHOLD
    chosen = rec.recommended_type if not rec.excluded else current
    saving = (current.price_per_month - chosen.price_per_month) if (current and chosen and not rec.excluded) else 0.0
    action = "resize" if rec.changes_type else "none"
    return _Verdict(finding, action, _spec(chosen), saving if math.isfinite(saving) else 0.0, month,
                    risk if action == "resize" else NO_CHANGE, resize_options, reasons)


def _while_shut_off(v: _Verdict, off: StoppedVm, rec: Recommendation, currency: str) -> _Verdict:
    """A VM off now, for less than ``stopped_after``: its size advice is kept for information only.

    Nothing is counted as saved while it is off (its compute is not billed then) and no step is planned;
    its options show the sizes its history fits, for when it runs again.
    """
    when = (f"since {off.last_running:%Y-%m-%d %H:%M} UTC" if off.last_running is not None
            else "not seen running in the data read")
    reasons = dict(v.reasons)
    reasons["overall"] = (f"shut off for {off.stopped_days:.1f} days ({when}), less than [rightsizing] "
                          f"stopped_after: advice informational, no saving counted while it is off; "
                          f"when running: {rec.reasons.get('overall', v.finding.value)}")
    options = tuple(_option(o.machine_type, o.monthly_savings) for o in rec.options)
    current = _spec(rec.current_type)
    return replace(v, action="none", target=current, savings=0.0, risk=NO_CHANGE, options=options,
                   reasons=reasons)


def fleet_peak_ratios(cols: _Columns, *, end_s: float, lookback_days: float) -> dict[str, float]:
    """Per VM: max / p95 of its hourly CPU peaks over the lookback (NaN without data or p95 of 0).

    The same figure :func:`_risk_and_projection` computes for one VM, done for the fleet at once.
    """
    cpu = cols.cpu_max
    ok = (cols.ts_s >= end_s - lookback_days * SECONDS_PER_DAY) & ~np.isnan(cpu)
    n = len(cols.names)
    rows = slice(None) if ok.all() else ok  # no copies when every hour counts
    codes, values = cols.codes[rows], cpu[rows]
    p95 = group_percentile(codes, values, n, 95.0)
    peak = np.full(n, -np.inf)
    if len(codes):  # codes ascending: one maximum per run of a VM's rows (as exact as np.maximum.at)
        starts = np.flatnonzero(np.concatenate([[True], codes[1:] != codes[:-1]]))
        peak[codes[starts]] = np.maximum.reduceat(values, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(p95 > 0, peak / p95, np.nan)
    return dict(zip(cols.names, ratio.tolist(), strict=True))


def _replays(rec: Recommendation) -> bool:
    """True when a finding made from ``rec`` replays the lookback on its target (:func:`_risk_and_projection`)."""
    return rec.changes_type and rec.recommended_type is not None and rec.evidence is not None


def fleet_replays(cols: _Columns, vms: Sequence[VmRecord], decided: Sequence[tuple[Recommendation, str, float]],
                  *, end_s: float) -> dict[str, Projection]:
    """The projection :func:`_risk_and_projection` makes for each VM whose recommendation changes its type,
    for the whole fleet in one pass per lookback (:func:`analytics.findings.projection.project_fleet`).

    ``decided`` is (recommendation, type source, lookback days) per VM of ``vms``; VMs without hours in
    ``cols`` are left to the per-VM path.
    """
    code_of = {name: i for i, name in enumerate(cols.names)}
    group_of_code = np.empty(len(cols.names), dtype=np.int64)
    group_of_code[cols.codes[cols.bounds[:-1]]] = np.arange(len(cols.bounds) - 1)
    picked: dict[float, list[tuple[str, int, MachineType]]] = {}
    for vm, (rec, _source, lookback) in zip(vms, decided, strict=True):
        target, code = rec.recommended_type, code_of.get(vm.uuid)
        if code is None or target is None or not _replays(rec) or target.vcpus < 1 or target.memory_bytes < 1:
            continue
        picked.setdefault(lookback, []).append((vm.uuid, int(group_of_code[code]), target))
    out: dict[str, Projection] = {}
    for lookback, chosen in picked.items():
        chosen.sort(key=lambda c: c[1])
        projections = project_fleet(
            cols.bounds, cols.ts_s, cols.cpu_max, cols.mem_max, np.array([c[1] for c in chosen], dtype=np.int64),
            np.array([c[2].vcpus for c in chosen]), np.array([c[2].memory_bytes for c in chosen]),
            start_s=end_s - lookback * SECONDS_PER_DAY)
        out.update((c[0], p) for c, p in zip(chosen, projections, strict=True))
    return out


def _leftover_max_memory(vm: VmRecord, current: MachineType | None, v: _Verdict, excluded: bool) -> bool | None:
    """None when the VM's persistent maximum memory is not above its memory (or the verdict resizes it anyway);
    else whether a plan step can lower it: the VM is exactly its type's size and nothing else is planned."""
    if current is None or vm.max_memory_bytes <= vm.memory_bytes or v.action == "resize":
        return None
    return (v.action == "none" and not excluded
            and (current.vcpus, current.memory_bytes) == (vm.vcpus, vm.memory_bytes))


def _max_memory_note(vm: VmRecord, type_name: str, steppable: bool) -> str:
    """Why a persistent maximum above the memory matters, and how it gets lowered."""
    how = (f"the plan's step to {type_name} at this size lowers it at next restart (persistent config)"
           if steppable else "lower <memory> in its persistent config (takes effect at next restart)")
    return (f"persistent max memory {vm.max_memory_bytes / GIB:.2f} GiB is above its {vm.memory_bytes / GIB:.2f} "
            f"GiB (left by an earlier downsize?): the guest can balloon beyond {type_name}; {how}")


def _risk_and_projection(
    rec: Recommendation, series: _Series, *, lookback_days: float, end_s: float, peak_ratio: float | None = None,
    replay: Projection | None = None,
) -> tuple[Risk, Projection | None]:
    """Replay the lookback's hourly peaks on the recommended type and score the move's risk.

    ``peak_ratio`` is the VM's max / p95 of hourly CPU peaks over the same lookback when known already
    (:func:`fleet_peak_ratios`); ``replay`` the projection when made already (:func:`fleet_replays`).
    """
    target = rec.recommended_type
    if not _replays(rec) or target is None or rec.evidence is None:
        return NO_CHANGE, None
    # the lookback's rows, worked out only when the fleet-wide replay or peak ratio is not given
    keep = series.ts_s >= end_s - lookback_days * SECONDS_PER_DAY if replay is None or peak_ratio is None else None
    projection = replay if replay is not None else project_utilisation(
        series.ts_s[keep], series.cpu_max[keep], series.mem_max[keep], target_vcpus=target.vcpus,
        target_memory_bytes=target.memory_bytes)
    ev = rec.evidence
    if peak_ratio is None:
        cpu = series.cpu_max[keep]
        cpu = cpu[~np.isnan(cpu)]
        p95 = float(np.percentile(cpu, 95)) if len(cpu) else math.nan
        peak_ratio = float(cpu.max()) / p95 if len(cpu) and p95 > 0 else math.nan
    ratio = peak_ratio
    growing = any(t is not None and t.growing for t in (ev.cpu_trend, ev.memory_trend))
    facts = RiskFacts(hours=projection.hours, hours_over=projection.hours_over, growing=growing,
                      span_days=ev.span_days, cpu_peak_to_p95=ratio, memory_known=projection.memory_known)
    return assess_risk(facts), projection


def _finding(
    vm: VmRecord, strategy: str, rec: Recommendation, source: str, idle: IdleFinding | None, *,
    series: _Series, lookback_days: float, end_s: float, lifecycle: Lifecycle, peak_ratio: float | None = None,
    pattern: str = "unknown", replay: Projection | None = None,
) -> VmFinding:
    current = rec.current_type
    priced = current if current is not None else rec.recommended_type
    currency = priced.currency if priced is not None else ""
    risk, projection = _risk_and_projection(rec, series, lookback_days=lookback_days, end_s=end_s,
                                            peak_ratio=peak_ratio, replay=replay)
    v = _verdict(rec, idle, lifecycle.stopped.get(vm.uuid), lifecycle.regrets.get(vm.uuid), risk, currency)
    off = lifecycle.shut_off.get(vm.uuid)
    if off is not None and v.finding is not Finding.STOPPED:
        v = _while_shut_off(v, off, rec, currency)
    steppable = _leftover_max_memory(vm, current, v, rec.excluded)
    if steppable is not None and current is not None:
        v = replace(v, reasons={**v.reasons, "max_memory": _max_memory_note(vm, current.name, steppable)})
    ev = rec.evidence
    return VmFinding(
        uuid=vm.uuid,
        name=vm.name,
        uri=vm.uri,
        host=vm.host,
        strategy=strategy,
        finding=v.finding,
        current_type=current.name if current else None,
        current_type_source=source,
        current_vcpus=vm.vcpus,
        current_memory_bytes=vm.memory_bytes,
        need_vcpus=rec.target_vcpus,
        need_memory_bytes=rec.target_memory_bytes,
        target_type=v.target[0] if v.target else None,
        target_vcpus=v.target[1] if v.target else None,
        target_memory_bytes=v.target[2] if v.target else None,
        price_before_per_hour=current.price_per_hour if current else None,
        price_after_per_hour=(0.0 if v.action == "stop" else v.target[3]) if v.target else None,
        currency=currency,
        monthly_savings=v.savings,
        risk=v.risk.level,
        excluded=rec.excluded,
        reasons=v.reasons,
        options=v.options,
        recommendation=rec,
        idle=idle,
        action=v.action if not rec.excluded else "none",
        savings_pct=100.0 * v.savings / v.base if v.base > 0 else 0.0,
        risk_reasons=v.risk.reasons,
        need_cpu_statistic=ev.cpu.statistic if ev is not None and ev.cpu is not None else "",
        need_memory_statistic=ev.memory.statistic if ev is not None and ev.memory is not None else "",
        projection=projection if v.finding in (Finding.OVER_PROVISIONED, Finding.UNDER_PROVISIONED) else None,
        stopped=lifecycle.stopped.get(vm.uuid),
        regret=lifecycle.regrets.get(vm.uuid),
        lowers_max_memory=bool(steppable),
        pattern=pattern,
    )


def fleet_summary(findings: Sequence[VmFinding]) -> dict[str, Any]:
    """Counts per finding and the total monthly savings of the proposed changes."""
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.finding.value] = counts.get(f.finding.value, 0) + 1
    return {
        "vms": len(findings),
        "findings": counts,
        "changes": sum(1 for f in findings if f.is_actionable),
        "monthly_savings": round(sum(f.monthly_savings for f in findings if f.is_actionable), 2),
        "stopped_monthly_cost": round(sum(f.monthly_savings for f in findings if f.finding is Finding.STOPPED), 2),
        "schedules": sum(1 for f in findings if f.schedule is not None),
        "schedule_monthly_savings": round(sum(f.schedule.monthly_savings for f in findings if f.schedule), 2),
        "currency": next((f.currency for f in findings if f.currency), ""),
    }


def configured_policies(settings: Settings) -> list[Policy]:
    """The ``[rightsizing] policies_file`` overrides (empty when unset). Raises InputError on a bad file."""
    from analytics.rightsizing.settings import load_policies

    path = settings.rightsizing.policies_file
    return load_policies(Path(path)) if path else []


def findings_for_settings(
    store: TimeSeriesStore,
    catalogue: FleetCatalogue,
    settings: Settings,
    *,
    now: datetime | None = None,
    strategy: str | None = None,
    policies: Sequence[Policy] | None = None,
    lookback_days: float | None = None,
) -> list[VmFinding]:
    """:func:`recommend_fleet` configured from the application settings (``[rightsizing]``, ``[idle]``,
    ``[costs]`` for stopped VMs); ``lookback_days`` overrides ``[rightsizing] lookback_days``.

    ``now`` defaults to the newest timestamp in the store (so imported history is judged where it ends),
    or the wall clock when the store is empty.
    """
    if now is None:
        newest = store.time_range()
        now = newest[1] if newest is not None else datetime.now(UTC)
    rs = settings.rightsizing
    return recommend_fleet(
        store, catalogue, strategy=strategy or rs.strategy, now=now,
        lookback_days=float(rs.lookback_days if lookback_days is None else lookback_days),
        policies=configured_policies(settings) if policies is None else policies, idle_settings=settings.idle,
        min_monthly_savings=rs.min_monthly_savings, schedule_settings=settings.schedules,
        rules=lifecycle_rules(settings, catalogue), profile=rs.profile, signal_settings=settings.signals,
    )


def lifecycle_rules(settings: Settings, catalogue: FleetCatalogue) -> LifecycleRules:
    """The lifecycle rules of the application settings; storage is left unpriced in another currency."""
    storage = load_storage_prices()
    costs = settings.costs
    currency = next((t.currency for t in catalogue.machine_types()), storage.currency)
    if costs.include_storage and storage.currency != currency:
        costs = costs.model_copy(update={"include_storage": False})
    return LifecycleRules(settings.rightsizing.stopped_after_days, costs, storage)
