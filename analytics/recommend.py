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
from dataclasses import replace
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import numpy as np
import pandas as pd

from analytics.findings.context import FleetCatalogue, Lifecycle
from analytics.findings.finding import VmFinding
from analytics.findings.verdict import make_finding
from analytics.fleet import resolve_machine_type
from analytics.frames import rows_since
from analytics.hourcolumns import HourColumns, HourSeries, fleet_peak_ratios, fleet_replays, fleet_trends, hour_columns
from analytics.idle import IdleFinding, find_idle
from analytics.patterns import FleetPatterns, fit_patterns, prefetch_clustering
from analytics.rightsizing import DEFAULT_STRATEGY, get_strategy
from analytics.rightsizing.base import Finding, Recommendation, UsageHistory
from analytics.rightsizing.batch import FleetColumns, fleet_needs
from analytics.rightsizing.decide import Strategy, decide
from analytics.rightsizing.policy import apply_overrides, exclude_recommendation, resolve_policy
from analytics.rightsizing.settings import Policy, RightsizerSettings, StrategySettings, profile_settings
from analytics.schedules import propose_fleet
from analytics.signals import (
    ContentionSignal,
    PressureSignal,
    add_pressure_reasons,
    add_storage_advice,
    apply_contention,
    contention_signals,
    memory_under_pressure,
    pressure_signals,
)
from analytics.storage import StorageRules, storage_advice
from analytics.trend import Trend
from collector.model import VmRecord
from core.settings import IdleSettings, ScheduleSettings, SignalSettings

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
    """Every VM's finding from an hourly frame already read (columns per ``collector.store.base``): the kernel
    of :func:`analytics.analysis.analyse_frame`, which every surface calls.

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
    settings = settings or _strategy_settings(chosen, lookback_days, profile, min_monthly_savings)
    end_s = now.timestamp()
    cols = hour_columns(frame)
    series = cols.series()
    lookback = settings.lookback_days
    trends: dict[str, tuple[Trend | None, Trend | None]] = {}
    if settings.trend_blocks_downsize:
        trends = fleet_trends(cols, end_s=end_s, lookback_days=lookback, growth_fraction=settings.trend_growth_fraction)
    idle: dict[str, IdleFinding] = {}
    if idle_settings is not None and not frame.empty:
        idle = find_idle(rows_since(frame, pd.Timestamp(now) - pd.Timedelta(days=lookback)), idle_settings)
    contention, pressure = _signals(frame, vms, signal_settings, now=now, lookback_days=lookback)
    peak_ratios = fleet_peak_ratios(cols, end_s=end_s, lookback_days=lookback)
    histories = [_history(vm, series.get(vm.uuid, _EMPTY), pressure.get(vm.uuid), end_s) for vm in vms]
    settings = chosen.fleet_settings(histories, settings)  # ours: margins calibrated on the whole fleet
    recent = rows_since(frame, pd.Timestamp(now) - pd.Timedelta(days=settings.lookback_days))
    schedules = schedule_settings or ScheduleSettings()
    # patterns are fitted before the findings are made, so each finding is made with its own
    patterns = fit_vm_patterns(recent, schedules, idle_settings or IdleSettings())
    decided = _decide_fleet(chosen, settings, vms, histories, cols, series, catalogue, policies or (), trends,
                            end_s=end_s)
    replays = fleet_replays(cols, vms, decided, end_s=end_s)
    findings = [
        make_finding(vm, chosen.name, rec, type_source, idle.get(vm.uuid), series=series.get(vm.uuid, _EMPTY),
                     lookback_days=vm_lookback, end_s=end_s, lifecycle=lifecycle or Lifecycle(),
                     pattern=patterns.pattern_of(vm.uuid), replay=replays.get(vm.uuid),
                     peak_ratio=peak_ratios.get(vm.uuid, math.nan) if vm_lookback == settings.lookback_days else None)
        for vm, (rec, type_source, vm_lookback) in zip(vms, decided, strict=True)
    ]
    findings = add_pressure_reasons(apply_contention(findings, contention), pressure)
    if signal_settings is not None and storage is not None:
        advice = storage_advice(frame, vms, storage.prices, storage.current_class, signal_settings,
                                now=pd.Timestamp(now), lookback_days=settings.lookback_days,
                                guest_fs_used=storage.guest_fs_used_bytes)
        findings = add_storage_advice(findings, advice)
    return with_schedules(findings, recent, vms, schedules, idle_settings or IdleSettings(),
                          lookback_days=settings.lookback_days, policies=policies or (), patterns=patterns)


#: The hours of a VM without rows in the frame.
_EMPTY = HourSeries(np.empty(0), np.empty(0), np.empty(0), np.empty(0))


def _strategy_settings(chosen: Strategy, lookback_days: float, profile: str | None,
                       min_monthly_savings: float | None) -> StrategySettings:
    """The strategy's settings: its defaults (ours: the profile's), the lookback and the minimum saving."""
    update: dict[str, Any] = {"lookback_days": lookback_days}
    if profile is not None and chosen.settings_type is RightsizerSettings:
        update = {**profile_settings(profile), **update}
    if min_monthly_savings is not None:
        update["min_monthly_savings"] = min_monthly_savings
    return chosen.settings_type.model_validate(update)


def _signals(frame: pd.DataFrame, vms: Sequence[VmRecord], settings: SignalSettings | None, *, now: datetime,
             lookback_days: float) -> tuple[dict[str, ContentionSignal], dict[str, PressureSignal]]:
    """Contention and memory-pressure signals of the fleet (none without signal settings)."""
    if settings is None:
        return {}, {}
    at = pd.Timestamp(now)
    return (contention_signals(frame, vms, settings, now=at, lookback_days=lookback_days),
            pressure_signals(frame, settings, now=at, lookback_days=lookback_days))


def _decide_fleet(
    chosen: Strategy, settings: StrategySettings, vms: Sequence[VmRecord], histories: Sequence[UsageHistory],
    cols: HourColumns, series: Mapping[str, HourSeries], catalogue: FleetCatalogue, policies: Sequence[Policy],
    trends: Mapping[str, tuple[Trend | None, Trend | None]], *, end_s: float,
) -> list[tuple[Recommendation, str, float]]:
    """Each VM's recommendation under its policies, with its type source and lookback; the fleet-wide needs
    (one vectorised pass) stand for a VM's own when its settings and memory series are the fleet's."""
    prepared = fleet_needs(FleetColumns(len(cols.names), cols.codes, cols.ts_s, cols.cpu_p95, cols.cpu_max,
                                        cols.mem_max, cols.running_s), chosen, settings, end_s=end_s)
    code_of = {name: i for i, name in enumerate(cols.names)} if prepared is not None else {}
    decided: list[tuple[Recommendation, str, float]] = []
    for vm, history in zip(vms, histories, strict=True):
        current, source = resolve_machine_type(vm, catalogue)
        resolved = resolve_policy(policies, uuid=vm.uuid, name=vm.name, labels=vm.labels or {})
        vm_settings = apply_overrides(settings, resolved.overrides, resolved.profile)
        same_window = vm_settings.lookback_days == settings.lookback_days
        code = code_of.get(vm.uuid)
        ready = (prepared[code] if prepared is not None and code is not None and vm_settings is settings
                 and history.memory_used_bytes is series.get(vm.uuid, _EMPTY).mem_max else None)
        rec = decide(chosen, history, vm, vm_settings, catalogue=catalogue, current_type=current,
                     trends=trends.get(vm.uuid, (None, None)) if same_window and settings.trend_blocks_downsize
                     else None, prepared=ready)
        if resolved.exclude:
            rec = exclude_recommendation(rec, resolved.sources)
        decided.append((rec, source, vm_settings.lookback_days))
    return decided


def _history(vm: VmRecord, s: HourSeries, pressure: PressureSignal | None, end_s: float) -> UsageHistory:
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


