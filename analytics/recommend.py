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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from analytics.catalogue import HOURS_PER_MONTH, MachineType
from analytics.fleet import resolve_machine_type
from analytics.idle import IdleFinding, find_idle
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
from analytics.rightsizing.settings import Policy, StrategySettings
from analytics.trend import Trend, theil_sen, trend_from_fit
from collector.actions.plan import RESIZE_FINDINGS, ResizeStep, SizeSpec
from collector.config import IdleSettings, Settings
from collector.model import VmRecord, VmRef
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
    risk: int
    excluded: bool
    reasons: Mapping[str, str]
    options: tuple[Mapping[str, Any], ...]
    recommendation: Recommendation = field(repr=False, compare=False)
    idle: IdleFinding | None = field(default=None, repr=False, compare=False)

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
            "currency": self.currency,
            "risk": self.risk,
            "excluded": self.excluded,
            "reason": self.reasons.get("overall", ""),
            "uuid": self.uuid,
        }

    def resize_step(self, default_uri: str = "") -> ResizeStep | None:
        """The resize this finding proposes as the plan's own value type; None when it proposes none.

        Only over-/under-provisioned, not excluded VMs whose target size differs get a step. The VM's URI
        is ``default_uri`` when the store recorded none.
        """
        if (self.finding.value not in RESIZE_FINDINGS or self.excluded or self.target_vcpus is None
                or self.target_memory_bytes is None):
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
            "need": {"vcpus": self.need_vcpus, "memory_bytes": self.need_memory_bytes},
            "price_before_per_hour": self.price_before_per_hour,
            "price_after_per_hour": self.price_after_per_hour,
            "currency": self.currency,
            "monthly_savings": round(self.monthly_savings, 4),
            "hours_per_month": HOURS_PER_MONTH,
            "risk": self.risk,
            "reasons": dict(self.reasons),
            "options": list(self.options),
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
) -> list[VmFinding]:
    """Recommend a size for every VM the store knows, from the hourly rollups of the last lookback.

    ``now`` must be timezone-aware. ``settings`` replaces the strategy's defaults (then ``lookback_days``
    and ``min_monthly_savings`` are ignored). ``idle_settings`` turns on idle detection
    (:func:`analytics.idle.find_idle`); idle VMs get the finding ``idle``. Raises KeyError for an unknown
    strategy and ValueError for a naive ``now``.
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (UTC), got {now!r}")
    policies = list(policies or ())
    longest = max([lookback_days if settings is None else settings.lookback_days]
                  + [p.lookback_days for p in policies if p.lookback_days is not None])
    start = now - pd.Timedelta(days=longest).to_pytimedelta()
    frame = store.frame(start, now, resolution="hour")
    return recommend_frame(
        frame, store.vms(), catalogue, strategy=strategy, now=now, lookback_days=lookback_days,
        policies=policies, settings=settings, idle_settings=idle_settings,
        min_monthly_savings=min_monthly_savings,
    )


@dataclass(frozen=True, slots=True)
class _Series:
    ts_s: np.ndarray
    cpu_p95: np.ndarray
    cpu_max: np.ndarray
    mem_max: np.ndarray


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

    def series(self) -> dict[str, _Series]:
        out: dict[str, _Series] = {}
        for i in range(len(self.bounds) - 1):
            a, b = self.bounds[i], self.bounds[i + 1]
            out[self.names[int(self.codes[a])]] = _Series(
                self.ts_s[a:b], self.cpu_p95[a:b], self.cpu_max[a:b], self.mem_max[a:b])
        return out


def _epoch_s(values: pd.Series) -> np.ndarray:
    """Epoch seconds (float64) of timestamps; naive values are taken as UTC."""
    ts = pd.to_datetime(values, utc=True).dt.tz_localize(None)
    seconds: np.ndarray = ts.to_numpy().astype("datetime64[ns]").view(np.int64) / 1e9
    return seconds


def _columns(frame: pd.DataFrame) -> _Columns:
    if frame.empty:
        empty = np.empty(0)
        return _Columns([], np.empty(0, dtype=np.int64), np.zeros(1, dtype=np.int64), empty, empty, empty, empty)
    vm_codes, vm_names = pd.factorize(frame["vm"], sort=False)
    ts_s = _epoch_s(frame["ts"])

    def column(name: str) -> np.ndarray:
        values: np.ndarray = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return values

    # Stores return rows grouped by VM in time order; sort only when they are not.
    same_vm = vm_codes[1:] == vm_codes[:-1]
    ordered = bool(np.all(vm_codes[1:] >= vm_codes[:-1])) and bool(np.all(ts_s[1:][same_vm] > ts_s[:-1][same_vm]))
    order = slice(None) if ordered else np.lexsort((ts_s, vm_codes))
    codes = vm_codes[order]
    change = np.ones(len(codes) + 1, dtype=bool)
    np.not_equal(codes[1:], codes[:-1], out=change[1:-1])
    return _Columns(
        [str(v) for v in vm_names], codes, np.flatnonzero(change), ts_s[order], column("cpu_p95_vcpus")[order],
        column("cpu_max_vcpus")[order], column("memory_used_max_bytes")[order],
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
) -> list[VmFinding]:
    """:func:`recommend_fleet` on an hourly frame already read (columns per ``collector.store.base``)."""
    chosen = get_strategy(strategy)
    if settings is None:
        update: dict[str, Any] = {"lookback_days": lookback_days}
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
        window = frame[pd.to_datetime(frame["ts"], utc=True) >= start]
        idle = find_idle(window, idle_settings)
    empty = _Series(np.empty(0), np.empty(0), np.empty(0), np.empty(0))
    findings: list[VmFinding] = []
    for vm in vms:
        current, source = resolve_machine_type(vm, catalogue)
        resolved = resolve_policy(policies or (), uuid=vm.uuid, name=vm.name, labels=vm.labels or {})
        vm_settings = apply_overrides(settings, resolved.overrides)
        s = series.get(vm.uuid, empty)
        history = UsageHistory(
            timestamps_s=s.ts_s, cpu_vcpus=s.cpu_p95, memory_used_bytes=s.mem_max, vcpus=vm.vcpus,
            memory_bytes=vm.memory_bytes, interval_s=3600.0, cpu_peak_vcpus=s.cpu_max, end_s=end_s,
        )
        same_window = vm_settings.lookback_days == settings.lookback_days
        rec = decide(
            chosen, history, vm, vm_settings, catalogue=catalogue, current_type=current,
            trends=trends.get(vm.uuid, (None, None)) if same_window and settings.trend_blocks_downsize else None,
        )
        if resolved.exclude:
            rec = exclude_recommendation(rec, resolved.sources)
        findings.append(_finding(vm, chosen.name, rec, source, idle.get(vm.uuid)))
    return findings


def _finding(
    vm: VmRecord, strategy: str, rec: Recommendation, source: str, idle: IdleFinding | None
) -> VmFinding:
    current = rec.current_type
    target = rec.recommended_type if not rec.excluded else current
    finding = rec.finding
    reasons = dict(rec.reasons)
    if idle is not None and rec.is_determined:
        finding = Finding.IDLE
        share = idle.cpu_idle_share
        reasons["idle"] = (f"idle: CPU below {idle.cpu_threshold_vcpus:g} vCPU for "
                           f"{'?' if share is None else f'{share:.0%}'} of {idle.observed_days:.1f} running days; "
                           "consider stopping or deleting it")
    savings = 0.0
    if current is not None and target is not None and not rec.excluded:
        savings = (current.price_per_hour - target.price_per_hour) * HOURS_PER_MONTH
    priced = current if current is not None else target
    currency = priced.currency if priced is not None else ""
    options = tuple(
        {"machine_type": o.machine_type.name, "vcpus": o.machine_type.vcpus,
         "memory_bytes": o.machine_type.memory_bytes, "price_per_hour": o.machine_type.price_per_hour,
         "price_per_month": round(o.price_per_month, 4), "monthly_savings": round(o.monthly_savings, 4)}
        for o in rec.options
    )
    return VmFinding(
        uuid=vm.uuid,
        name=vm.name,
        uri=vm.uri,
        host=vm.host,
        strategy=strategy,
        finding=finding,
        current_type=current.name if current else None,
        current_type_source=source,
        current_vcpus=vm.vcpus,
        current_memory_bytes=vm.memory_bytes,
        need_vcpus=rec.target_vcpus,
        need_memory_bytes=rec.target_memory_bytes,
        target_type=target.name if target else None,
        target_vcpus=target.vcpus if target else None,
        target_memory_bytes=target.memory_bytes if target else None,
        price_before_per_hour=current.price_per_hour if current else None,
        price_after_per_hour=target.price_per_hour if target else None,
        currency=currency,
        monthly_savings=savings if math.isfinite(savings) else 0.0,
        risk=rec.risk,
        excluded=rec.excluded,
        reasons=reasons,
        options=options,
        recommendation=rec,
        idle=idle,
    )


def fleet_summary(findings: Sequence[VmFinding]) -> dict[str, Any]:
    """Counts per finding and the total monthly savings of the proposed changes."""
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.finding.value] = counts.get(f.finding.value, 0) + 1
    return {
        "vms": len(findings),
        "findings": counts,
        "changes": sum(1 for f in findings if f.changes_type),
        "monthly_savings": round(sum(f.monthly_savings for f in findings if f.changes_type), 2),
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
) -> list[VmFinding]:
    """:func:`recommend_fleet` configured from the application settings (``[rightsizing]``, ``[idle]``).

    ``now`` defaults to the newest timestamp in the store (so imported history is judged where it ends),
    or the wall clock when the store is empty.
    """
    if now is None:
        newest = store.time_range()
        now = newest[1] if newest is not None else datetime.now(UTC)
    rs = settings.rightsizing
    return recommend_fleet(
        store, catalogue, strategy=strategy or rs.strategy, now=now, lookback_days=float(rs.lookback_days),
        policies=configured_policies(settings) if policies is None else policies, idle_settings=settings.idle,
        min_monthly_savings=rs.min_monthly_savings,
    )
