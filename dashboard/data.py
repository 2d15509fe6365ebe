"""The dashboard's view model: shapes a cached snapshot of the store and analytics for the pages.

Callbacks stay thin: they pass the global filters here and get back frames, rows and numbers to draw.
Fleet views read hourly rollups (``resolution="hour"``), never raw samples. The snapshot and its
background refresh live in ``dashboard.snapshot``, the view values in ``dashboard.views``, the apply
control in ``dashboard.apply`` and the calls into analytics in ``dashboard.adapters``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from analytics.catalogue import CsvPriceCatalogue, StoragePrices, load_storage_prices
from analytics.costs import month_figures
from analytics.frames import epoch_ns
from analytics.own_frontier import OwnFrontier
from analytics.placement import PlacementRisk, placement_risks, risk_by_vm
from analytics.signals import HostLoad, StorageAdvice, contention_signals, host_loads
from collector.config import Settings
from collector.model import VmRecord, VmState
from collector.store.base import TimeSeriesStore
from collector.store.jsonmeta import stored_host_cpus
from dashboard.adapters import load_backups, load_findings, load_frontier
from dashboard.apply import ApplyHook, apply_choices, apply_resize
from dashboard.snapshot import Snapshot, SnapshotCache, build_snapshot, finite_or_none
from dashboard.views import (
    DATA_MODES,
    DEFAULT_RANGE,
    GIB,
    HOUR_S,
    LOOKBACKS_DAYS,
    MODE_ALIASES,
    RANGES,
    BackupView,
    Filters,
    FindingView,
    OptionView,
    OverviewView,
    VmDetailView,
    csv_safe,
    labels_text,
)

__all__ = [
    "DATA_MODES", "DEFAULT_RANGE", "GIB", "RANGES", "ApplyHook", "BackupView", "DashboardData", "Filters",
    "FindingView", "OptionView", "OverviewView", "Snapshot", "VmDetailView", "csv_safe",
]

T = TypeVar("T")
#: A fleet whose loaded window holds more VM-hours than this is shown in two steps: the last QUICK_WINDOW first
#: (seconds), then the whole window (read and right-sized in the background). 1,000 VMs x 31 days is 744,000.
STAGED_ABOVE_VM_HOURS = 250_000
#: Hours of stored data from which the forecast uses the trailing run-rate (before: the current one).
FORECAST_TRAILING_MIN_H = 24.0


class DashboardData:
    """View model over a store and a catalogue; thread-safe, one per app."""

    def __init__(
        self,
        settings: Settings,
        store: TimeSeriesStore,
        catalogue: CsvPriceCatalogue,
        *,
        data_mode: str,
        storage: StoragePrices | None = None,
        clock: Callable[[], datetime] | None = None,
        ttl_s: float = 60.0,
        findings_loader: Callable[[DashboardData, Snapshot], Mapping[str, FindingView]] | None = None,
        backups_loader: Callable[[DashboardData, Snapshot], Mapping[str, BackupView]] | None = None,
        staged_above_vm_hours: int | None = STAGED_ABOVE_VM_HOURS,
    ) -> None:
        self.settings = settings
        self.store = store
        self.catalogue = catalogue
        self.data_mode = MODE_ALIASES.get(data_mode, data_mode)
        self.storage = storage if storage is not None else load_storage_prices()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.currency = getattr(catalogue, "currency", "") or "EUR"
        self._findings_loader = findings_loader or load_findings
        self._backups_loader = backups_loader or load_backups
        self.staged_above_vm_hours = staged_above_vm_hours
        self._cache = SnapshotCache(self._build, ttl_s=ttl_s, first=self._build_first)

    # -- snapshot ------------------------------------------------------------------------------
    @property
    def ttl_s(self) -> float:
        return self._cache.ttl_s

    @ttl_s.setter
    def ttl_s(self, value: float) -> None:
        self._cache.ttl_s = value

    @property
    def last_build_s(self) -> float:
        return self._cache.last_build_s

    @last_build_s.setter
    def last_build_s(self, value: float) -> None:
        self._cache.last_build_s = value

    @property
    def last_error(self) -> str | None:
        return self._cache.last_error

    def snapshot(self) -> Snapshot:
        """Return the current snapshot; build it now if there is none, refresh it in the background if stale."""
        return self._cache.get()

    def wait_for_refresh(self, timeout_s: float = 60.0) -> None:
        """Block until a background refresh in progress (if any) has finished."""
        self._cache.wait_for_refresh(timeout_s)

    def refresh(self) -> None:
        """Rebuild the snapshot now (blocking)."""
        self._cache.refresh()

    def add_warmer(self, warmer: Callable[[], object]) -> None:
        """Run ``warmer`` after every rebuild (e.g. a page's default view), so users hit a warm cache."""
        self._cache.add_warmer(warmer)

    @property
    def first_build_s(self) -> float:
        """Seconds the first snapshot took (the short first window of a large fleet)."""
        return self._cache.first_build_s

    def is_complete(self) -> bool:
        """Whether the views show the whole loaded window with findings (not yet the short first window)."""
        return self.snapshot().complete

    def loading_note(self) -> str:
        """What the views lack while the first, short window is shown; empty once the full window is in."""
        snap = self.snapshot()
        if snap.complete:
            return ""
        hours = (snap.window_end - snap.window_start).total_seconds() / HOUR_S
        return (f"showing the last {hours:g} h while the full {max(RANGES.values()).days} days are read; month to "
                "date, forecast and findings follow")

    def range_text(self, range_key: str) -> str:
        """How a range reads on the page: "last 14d", or the hours shown while the first window is."""
        text = f"last {range_key}" if range_key in RANGES else range_key
        snap = self.snapshot()
        if snap.complete:
            return text
        return f"last {(snap.window_end - snap.window_start).total_seconds() / HOUR_S:g} h (loading {text})"

    def _build_first(self) -> Snapshot:
        snap = build_snapshot(self.settings, self.store, self.catalogue, self.storage, self.clock,
                              quick_above_vm_hours=self.staged_above_vm_hours, analyse=self._analyse)
        if snap.complete:
            self._warm_views(snap)
        return snap

    def _build(self) -> Snapshot:
        snap = build_snapshot(self.settings, self.store, self.catalogue, self.storage, self.clock,
                              analyse=self._analyse)
        self._warm_views(snap)
        return snap

    def _analyse(self, snap: Snapshot) -> None:
        """Findings and backup checks of a complete snapshot (they read its hours, not its cost arrays)."""
        snap.findings = self._findings_loader(self, snap)
        snap.backups = self._backups_loader(self, snap)

    def placement(self) -> list[PlacementRisk]:
        """Placement verdicts of every service with two or more running members, riskiest first."""
        snap = self.snapshot()
        return snap.memoised(("placement",), lambda: placement_risks(snap.vms, self.settings.placement))

    def vm_placement(self, uuid: str) -> PlacementRisk | None:
        """The placement risk of the VM's service, when it is at risk."""
        snap = self.snapshot()
        return risk_by_vm(self.placement(), [snap.by_uuid[uuid]] if uuid in snap.by_uuid else []).get(uuid)

    def warm(self) -> None:
        """Build the snapshot (if needed), the default views and the warmers' results; after a short first
        window, start reading the full one in the background."""
        snap = self.snapshot()
        self._warm_views(snap)
        self._cache.run_warmers()
        if not snap.complete:
            self._cache.start_refresh()

    def cached(self, key: Hashable, compute: Callable[[], T]) -> T:
        """Memoise ``compute()`` under ``key`` for the life of the current snapshot (e.g. built figures)."""
        snap = self.snapshot()
        return self._memo(snap, ("cached", key), compute)

    def _warm_views(self, snap: Snapshot) -> None:
        default = Filters()
        self._memo(snap, ("overview", default), lambda: self._overview(snap, default))
        self._memo(snap, ("vm_rows", default), lambda: self._vm_rows(snap, default))
        for range_key in RANGES:  # a range change on the VMs page then only reads them
            self._range_stats(snap, range_key)
        self._memo(snap, ("recs", (), ()), lambda: self._rec_rows(snap, default))
        self._memo(snap, ("backups", (), ()), lambda: self._backup_rows(snap, default))

    def _memo(self, snap: Snapshot, key: Hashable, compute: Callable[[], T]) -> T:
        return snap.memoised(key, compute)

    # -- filters -------------------------------------------------------------------------------
    def filter_options(self) -> tuple[list[str], list[str]]:
        """Label pairs (``key=value``) and host names present in the inventory."""
        snap = self.snapshot()
        return list(snap.label_options), list(snap.host_options)

    def as_of(self) -> datetime:
        """The newest data the views show (UTC)."""
        return self.snapshot().anchor

    def selected_vms(self, filters: Filters) -> tuple[str, ...]:
        """UUIDs of the VMs matching the label and host filters (labels: OR within a key, AND across keys)."""
        return self._selected(self.snapshot(), filters)

    def _selected(self, snap: Snapshot, filters: Filters) -> tuple[str, ...]:
        return self._memo(snap, ("vms", filters.labels, filters.hosts), lambda: _select(snap.vms, filters))

    def _range_start(self, snap: Snapshot, range_key: str) -> datetime:
        """Where ``range_key`` starts, within the loaded window (a short first window cuts every range)."""
        return max(snap.window_end - RANGES.get(range_key, RANGES[DEFAULT_RANGE]), snap.window_start)

    def _row_mask(self, snap: Snapshot, filters: Filters, *, with_range: bool = True) -> np.ndarray:
        selected = self._selected(snap, filters)
        arr = snap.arrays
        if len(selected) == len(snap.vms):
            mask = np.ones(len(arr["code"]), dtype=bool)
        else:
            wanted = np.zeros(len(snap.vms) + 1, dtype=bool)
            wanted[[snap.codes[u] for u in selected]] = True
            mask = wanted[arr["code"]]
        if with_range:
            start_h = int((self._range_start(snap, filters.range_key) - snap.window_start).total_seconds()) // HOUR_S
            mask &= arr["hour"] >= start_h
        return mask

    # -- overview ------------------------------------------------------------------------------
    def overview(self, filters: Filters) -> OverviewView:
        """Spend, month-to-date, forecast, savings, utilisation and finding counts for the filters."""
        snap = self.snapshot()
        return self._memo(snap, ("overview", filters), lambda: self._overview(snap, filters))

    def _overview(self, snap: Snapshot, filters: Filters) -> OverviewView:
        start_h = int((self._range_start(snap, filters.range_key) - snap.window_start).total_seconds()) // HOUR_S
        n_hours = int((snap.window_end - snap.window_start).total_seconds()) // HOUR_S
        sums = self._hour_sums(snap, filters)

        def per_hour(name: str) -> np.ndarray:
            return sums[name][start_h:]

        ts = pd.date_range(snap.window_start + timedelta(hours=start_h), periods=n_hours - start_h, freq="h")
        spend_hour = pd.DataFrame({"ts": ts, "compute_cost": per_hour("compute_cost"),
                                   "storage_cost": per_hour("storage_cost")})
        spend_hour["cost"] = spend_hour["compute_cost"] + spend_hour["storage_cost"]
        spend_day = (spend_hour.assign(ts=spend_hour["ts"].dt.floor("D"))
                     .groupby("ts", as_index=False)[["compute_cost", "storage_cost", "cost"]].sum())
        util = pd.DataFrame({
            "ts": ts,
            "cpu_used_vcpus": per_hour("cpu_used_vcpus"),
            "cpu_allocated_vcpus": per_hour("cpu_allocated_vcpus"),
            "memory_used_bytes": per_hour("memory_used_bytes"),
            "memory_allocated_bytes": per_hour("memory_allocated_bytes"),
            "memory_known_allocated_bytes": per_hour("memory_known_allocated_bytes"),
        })
        selected = self._selected(snap, filters)
        month = self._month_figures(snap, filters)
        counts: dict[str, int] = {}
        savings = 0.0
        upsize = 0.0
        for uuid in selected:
            f = snap.findings.get(uuid)
            if f is None:
                continue
            counts[f.finding] = counts.get(f.finding, 0) + 1
            if f.monthly_savings > 0:
                savings += f.monthly_savings
            elif f.monthly_savings < 0:
                upsize -= f.monthly_savings
        running = sum(1 for u in selected if snap.by_uuid[u].state is VmState.RUNNING)
        unpriced = sum(1 for u in selected if snap.latest_cost.get(u, (None,))[0] is None)
        now_running = [u for u in selected if u in snap.running_now]
        rate_now = self._rate_now(snap, selected)
        mtd, forecast, basis = self._forecast_now(month, rate_now, len(now_running))
        if not snap.complete:  # a short first window: no month figures or findings yet
            mtd = forecast = savings = upsize = math.nan
            basis = self.loading_note()
        return OverviewView(
            currency=self.currency,
            spend_hour=spend_hour,
            spend_day=spend_day,
            utilisation=util,
            finding_counts=counts,
            range_cost=float(spend_hour["cost"].sum()),
            month_to_date=mtd,
            forecast_month_end=forecast,
            forecast_basis=basis,
            potential_monthly_savings=savings,
            upsize_monthly_cost=upsize,
            vms_total=len(selected),
            vms_running=running,
            unpriced_vms=unpriced,
            run_rate_now=rate_now,
            running_now=len(now_running),
        )

    def _hour_sums(self, snap: Snapshot, filters: Filters) -> Mapping[str, np.ndarray]:
        """Per hour of the window, the sums of the overview's arrays over the selected VMs' rows.

        A range is a tail of these (an hour's sum is over the same rows in the same order), so a change of
        range reuses them; memoised per label and host filter.
        """
        def compute() -> Mapping[str, np.ndarray]:
            arr = snap.arrays
            mask = self._row_mask(snap, filters, with_range=False)
            n_hours = int((snap.window_end - snap.window_start).total_seconds()) // HOUR_S
            hour_idx = arr["hour"] if mask.all() else arr["hour"][mask]
            return {name: np.bincount(hour_idx, weights=arr[name] if mask.all() else arr[name][mask],
                                      minlength=n_hours) for name in _HOUR_SUMS}

        return self._memo(snap, ("hour_sums", filters.labels, filters.hosts), compute)

    @staticmethod
    def _rate_now(snap: Snapshot, selected: Sequence[str]) -> float:
        """Cost per hour now: compute + disks of the VMs running in the newest raw samples, disks of the others."""
        rate = 0.0
        for uuid in selected:
            _mtype, _source, price, per_hour = snap.latest_cost.get(uuid, (None, "unknown", None, math.nan))
            total = finite_or_none(per_hour) or 0.0
            rate += total if uuid in snap.running_now else max(total - (finite_or_none(price) or 0.0), 0.0)
        return rate

    def _forecast_now(self, month: tuple[float, float, str, float, float], rate_now: float,
                      running: int) -> tuple[float, float, str]:
        """Month figures; the forecast runs on the current run-rate while the trailing one spans under a day.

        A trailing average over less than a day is diluted by the partial first and current hours; the
        current run-rate (the "Run-rate now" figure) is the better basis until a full day is stored.
        """
        mtd, forecast, basis, rate_hours, remaining_h = month
        if rate_hours >= FORECAST_TRAILING_MIN_H:
            return mtd, forecast, basis
        cur = self.currency
        return mtd, mtd + rate_now * remaining_h, (
            f"month to date {mtd:.2f} {cur} + run-rate now {rate_now:.4f} {cur}/h ({running} VMs running in the "
            f"newest samples, with the disks of the others; the trailing run-rate needs "
            f"{FORECAST_TRAILING_MIN_H:g} h of data, {rate_hours:.1f} h stored) x {remaining_h:.1f} h left "
            "in the month")

    def _month_figures(self, snap: Snapshot, filters: Filters) -> tuple[float, float, str, float, float]:
        """Month-to-date, forecast, its basis, the trailing run-rate's hours and the hours left in the month
        for the label/host filters (independent of the range)."""
        key = ("month", filters.labels, filters.hosts)

        def compute() -> tuple[float, float, str, float, float]:
            mask = self._row_mask(snap, filters, with_range=False)
            arr = snap.arrays
            ts_ns = epoch_ns(snap.hours["ts"])
            month = month_figures(ts_ns if mask.all() else ts_ns[mask], _row_costs(arr, mask), now=snap.cost_now,
                                  currency=self.currency)
            return (month.month_to_date, month.forecast_month_end, month.forecast_basis,
                    month.run_rate_hours, month.remaining_hours)

        return self._memo(snap, key, compute)

    # -- findings per lookback -----------------------------------------------------------------
    def lookback_days(self, lookback: int | str | None) -> int:
        """A valid lookback choice (days): one of ``LOOKBACKS_DAYS``, else ``[rightsizing] lookback_days``."""
        try:
            days = int(lookback) if lookback is not None else 0
        except (TypeError, ValueError, OverflowError):
            days = 0
        return days if days in LOOKBACKS_DAYS else int(self.settings.rightsizing.lookback_days)

    def _findings(self, snap: Snapshot, lookback: int | str | None) -> Mapping[str, FindingView]:
        days = self.lookback_days(lookback)
        if days == int(self.settings.rightsizing.lookback_days) or not snap.complete:
            return snap.findings
        return self._memo(snap, ("findings", days), lambda: load_findings(self, snap, float(days)))

    # -- VM table ------------------------------------------------------------------------------
    def vm_rows(self, filters: Filters) -> list[dict[str, Any]]:
        """One row per selected VM for the VMs grid (plain JSON values, ``id`` = UUID)."""
        snap = self.snapshot()
        return self._memo(snap, ("vm_rows", filters), lambda: self._vm_rows(snap, filters))

    def _range_stats(self, snap: Snapshot, range_key: str) -> pd.DataFrame:
        def compute() -> pd.DataFrame:
            start_h = int((self._range_start(snap, range_key) - snap.window_start).total_seconds()) // HOUR_S
            arr = snap.arrays
            rows = arr["hour"] >= start_h
            code = arr["code"][rows]
            n = len(snap.vms) + 1
            h = snap.hours
            cpu_max = _group_max(code, h["cpu_max_vcpus"].to_numpy(dtype=float)[rows], n)
            mem_max = _group_max(code, h["memory_used_max_bytes"].to_numpy(dtype=float)[rows], n)
            stats = pd.DataFrame({
                "cpu_p95_vcpus": _group_percentile(code, h["cpu_mean_vcpus"].to_numpy(dtype=float)[rows], n, 0.95),
                "cpu_max_vcpus": cpu_max,
                "memory_used_max_bytes": mem_max,
                "running_h": np.bincount(code, weights=np.nan_to_num(
                    h["running_s"].to_numpy(dtype=float)[rows]), minlength=n) / 3600.0,
                "range_cost": np.bincount(code, weights=arr["compute_cost"][rows] + arr["storage_cost"][rows],
                                          minlength=n),
            })
            return stats

        return self._memo(snap, ("range_stats", range_key), compute)

    def _vm_rows(self, snap: Snapshot, filters: Filters) -> list[dict[str, Any]]:
        frame = self._range_stats(snap, filters.range_key)
        stats = {name: frame[name].to_numpy() for name in frame.columns}  # one lookup per value, not a row Series
        rows: list[dict[str, Any]] = []
        for uuid in self._selected(snap, filters):
            vm = snap.by_uuid[uuid]
            code = snap.codes[uuid]
            st = {name: values[code] for name, values in stats.items()}
            mtype, source, _price, per_hour = snap.latest_cost.get(uuid, (None, "unknown", None, math.nan))
            f = snap.findings.get(uuid)
            need = f.target_vcpus if f is not None and f.need_statistic else None
            cpu_p95 = finite_or_none(st["cpu_p95_vcpus"])
            mem_max = finite_or_none(st["memory_used_max_bytes"])
            rows.append({
                "id": uuid,
                "name": vm.name,
                "host": vm.host,
                "state": vm.state.value,
                "labels": labels_text(vm.labels),
                "machine_type": (mtype or "(unpriced)") + (" *" if source == "inferred" else ""),
                "vcpus": vm.vcpus,
                "memory_gib": round(vm.memory_bytes / GIB, 2),
                "hourly_cost": _round(per_hour, 4),
                "range_cost": _round(finite_or_none(st["range_cost"]), 2),
                "cpu_p95_vcpus": _round(cpu_p95, 3),
                "cpu_p95_pct": _round(100.0 * cpu_p95 / vm.vcpus if cpu_p95 is not None and vm.vcpus else None, 1),
                "memory_used_gib": _round(mem_max / GIB if mem_max is not None else None, 2),
                "memory_used_pct": _round(
                    100.0 * mem_max / vm.memory_bytes if mem_max is not None and vm.memory_bytes else None, 1),
                "need_vcpus": _round(need, 2),
                "finding": f.finding if f else "(none)",
                "pattern": f.pattern if f else "unknown",
                "monthly_savings": _round(f.monthly_savings if f else None, 2),
                "savings_pct": _round(f.savings_pct if f else None, 1),
            })
        rows.sort(key=lambda r: (-(r["monthly_savings"] or 0.0), r["name"]))
        return rows

    # -- VM detail -----------------------------------------------------------------------------
    def find_vm(self, key: str) -> str | None:
        """The UUID of the VM whose UUID or else name is ``key``; with one name on several hosts, the first
        by host; None when no VM matches."""
        snap = self.snapshot()
        if key in snap.by_uuid:
            return key
        named = sorted((vm.host, vm.uuid) for vm in snap.vms if vm.name == key)
        return named[0][1] if named else None

    def vm_detail(self, uuid: str, filters: Filters, lookback: int | str | None = None) -> VmDetailView | None:
        """Series, cost and finding (judged over ``lookback`` days) of one VM; None for an unknown VM."""
        snap = self.snapshot()
        vm = snap.by_uuid.get(uuid)
        if vm is None:
            return None

        def compute() -> VmDetailView:
            start = pd.Timestamp(self._range_start(snap, filters.range_key))
            rows = np.flatnonzero(snap.arrays["code"] == snap.codes[uuid])
            rows = rows[(snap.hours["ts"].iloc[rows] >= start).to_numpy(dtype=bool)]
            hours = snap.hours.iloc[rows].reset_index(drop=True)
            hours["vm"] = hours["vm"].astype(str)
            costs = _cost_rows(snap, rows)
            cost_day = (costs.assign(ts=costs["ts"].dt.floor("D"))
                        .groupby("ts", as_index=False)[["compute_cost", "storage_cost", "cost"]].sum(min_count=1))
            mtype, source, price, _total = snap.latest_cost.get(uuid, (None, "unknown", None, math.nan))
            return VmDetailView(
                vm=vm, currency=self.currency, hours=hours, cost_day=cost_day.fillna(0.0), machine_type=mtype,
                type_source=source, price_per_hour=price, finding=self._findings(snap, lookback).get(uuid),
                backup=snap.backups.get(uuid),
            )

        return self._memo(snap, ("vm", uuid, filters.range_key, self.lookback_days(lookback)), compute)

    # -- recommendations -----------------------------------------------------------------------
    def savings_risk(self, lookback: int | str | None = None) -> OwnFrontier:
        """The fleet's savings-vs-risk frontier over ``lookback`` days (a valid choice, else the configured
        lookback) of stored history, memoised per snapshot and lookback."""
        snap = self.snapshot()
        days = self.lookback_days(lookback)
        if not snap.complete:  # the short first window backtests nothing
            return OwnFrontier((), self.settings.rightsizing.profile, 0.0, 0.0, 0)
        return self._memo(snap, ("frontier", days), lambda: load_frontier(self, snap, float(days)))

    def recommendation_rows(self, filters: Filters, lookback: int | str | None = None) -> list[dict[str, Any]]:
        """Findings that call for action (not optimized) over ``lookback`` days, biggest saving first."""
        snap = self.snapshot()
        days = self.lookback_days(lookback)
        key = ("recs", filters.labels, filters.hosts) + ((days,) if days != self.lookback_days(None) else ())
        return self._memo(snap, key, lambda: self._rec_rows(snap, filters, days))

    def need_statistic(self, lookback: int | str | None = None) -> str:
        """The CPU statistic the findings call "need" (the same on every page, the report and the CLI)."""
        snap = self.snapshot()
        return next((f.need_statistic for f in self._findings(snap, lookback).values() if f.need_statistic), "")

    def _rec_rows(self, snap: Snapshot, filters: Filters, lookback: int | None = None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        findings = self._findings(snap, lookback)
        for uuid in self._selected(snap, filters):
            f = findings.get(uuid)
            if f is not None and f.schedule:
                rows.append(_schedule_row(snap.by_uuid[uuid], f))
            if f is not None and f.storage is not None and f.storage.is_change:
                rows.append(_storage_row(snap.by_uuid[uuid], f, f.storage))
            if f is None or f.finding == "optimized":
                continue
            vm = snap.by_uuid[uuid]
            rows.append({
                "id": uuid,
                "name": vm.name,
                "host": vm.host,
                "labels": labels_text(vm.labels),
                "finding": f.finding,
                "current_type": f.current_type or "",
                "recommended_type": f.recommended_type or "",
                "target_vcpus": _round(f.target_vcpus, 2),
                "target_memory_gib": _round(f.target_memory_bytes / GIB if f.target_memory_bytes else None, 2),
                "monthly_savings": _round(f.monthly_savings, 2),
                "savings_pct": _round(f.savings_pct, 1),
                "action": f.action,
                "risk": f.risk,
                "risk_reasons": "; ".join(f.risk_reasons),
                "options": "; ".join(
                    f"{o.machine_type} ({o.vcpus} vCPU, {o.memory_bytes / GIB:g} GiB, "
                    f"{o.price_per_month:.2f} {self.currency}/month)" for o in f.options)
                + ("; " if f.options and f.other_options else "") + "; ".join(f.other_options),
                "reason": f.reasons.get("overall", ""),
                "excluded": "yes" if f.excluded else "",
            })
        rows.sort(key=lambda r: (-(r["monthly_savings"] or 0.0), r["name"]))
        return rows

    def recommendations_csv(self, filters: Filters, lookback: int | str | None = None) -> str:
        """The recommendation rows as CSV text (formula-safe), with a currency column."""
        snap = self.snapshot()
        rows = self.recommendation_rows(filters, lookback)
        findings = self._findings(snap, lookback)
        buf = io.StringIO()
        columns = ["name", "uuid", "host", "labels", "finding", "action", "current_type", "recommended_type",
                   "target_vcpus", "target_memory_gib", "monthly_savings", "savings_pct", "currency", "risk",
                   "risk_reasons", "options", "reason", "cpu_reason", "memory_reason", "excluded"]
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            uuid = r["id"].split("#")[0]  # schedule and storage rows carry a #kind suffix
            f = findings[uuid]
            values = {**r, "uuid": uuid, "currency": self.currency,
                      "cpu_reason": f.reasons.get("cpu", ""), "memory_reason": f.reasons.get("memory", "")}
            writer.writerow([csv_safe("" if values.get(c) is None else values[c]) for c in columns])
        return buf.getvalue()

    def apply_choices(self, filters: Filters) -> list[tuple[str, str, list[str]]]:
        """(UUID, VM name, option type names) of findings that could be applied."""
        snap = self.snapshot()
        rows = self._memo(snap, ("recs", filters.labels, filters.hosts), lambda: self._rec_rows(snap, filters))
        return apply_choices(snap, [(r["id"], r["name"]) for r in rows if r["finding"] not in ("schedule", "storage")])

    def apply(self, hook: ApplyHook | None, vm_uuid: str | None, machine_type: str | None, token: str | None) -> str:
        """Check the token and call the apply hook; returns the message to show (never raises ActionError)."""
        return apply_resize(self.settings.actions, self.snapshot(), hook, vm_uuid, machine_type, token)

    # -- hosts ---------------------------------------------------------------------------------
    def host_loads(self) -> list[HostLoad]:
        """Each host's vCPUs allocated to running VMs against its CPUs, and its VMs' wait for a host CPU."""
        snap = self.snapshot()
        return self._memo(snap, ("hosts",), lambda: self._host_loads(snap))

    def _host_loads(self, snap: Snapshot) -> list[HostLoad]:
        vms = list(snap.vms)
        hours = snap.hours if snap.complete else snap.hours.iloc[:0]  # vCPU wait is judged over the lookback
        contention = contention_signals(hours, vms, self.settings.signals, now=pd.Timestamp(snap.cost_now),
                                        lookback_days=float(self.lookback_days(None)))
        return host_loads(vms, stored_host_cpus(self.store), contention)

    # -- backups -------------------------------------------------------------------------------
    def backup_rows(self, filters: Filters) -> list[dict[str, Any]]:
        """Backup age against policy for each selected VM that has a policy; worst first."""
        snap = self.snapshot()
        return self._memo(snap, ("backups", filters.labels, filters.hosts), lambda: self._backup_rows(snap, filters))

    def _backup_rows(self, snap: Snapshot, filters: Filters) -> list[dict[str, Any]]:
        urgency = {"critical": 0, "high": 1, "medium": 2, "low": 3, "none": 4}
        rows: list[dict[str, Any]] = []
        for uuid in self._selected(snap, filters):
            b = snap.backups.get(uuid)
            if b is None:
                continue
            vm = snap.by_uuid[uuid]
            rows.append({
                "id": uuid,
                "name": vm.name,
                "host": vm.host,
                "env": (vm.labels or {}).get("env", ""),
                "policy": b.policy,
                "policy_h": _round(b.policy_h, 1),
                "newest_backup": (b.newest.strftime("%Y-%m-%d %H:%M UTC") if b.newest
                                  else "unknown" if b.status == "unknown" else "never"),
                "age_h": _round(b.age_h, 1),
                "status": b.status,
                "urgency": b.urgency,
                "detail": b.detail,
            })
        rows.sort(key=lambda r: (urgency.get(r["urgency"], 9), -(r["age_h"] or 0.0), r["name"]))
        return rows


# -- helpers --------------------------------------------------------------------------------------
_HOUR_SUMS = ("compute_cost", "storage_cost", "cpu_used_vcpus", "cpu_allocated_vcpus", "memory_used_bytes",
              "memory_allocated_bytes", "memory_known_allocated_bytes")


def _row_costs(arr: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """fleet_costs' ``cost`` of the rows (a mask or positions): compute (0 when unpriced) plus storage."""
    cost: np.ndarray = arr["compute_cost"][rows] + arr["storage_cost"][rows]
    return cost


def _cost_rows(snap: Snapshot, rows: np.ndarray) -> pd.DataFrame:
    """fleet_costs' ``ts``, ``compute_cost`` (NaN when unpriced), ``storage_cost`` and ``cost`` of the rows."""
    arr = snap.arrays
    return pd.DataFrame({
        "ts": pd.DatetimeIndex(snap.hours["ts"].iloc[rows]).as_unit("ns"),
        "compute_cost": np.where(arr["priced"][rows], arr["compute_cost"][rows], np.nan),
        "storage_cost": arr["storage_cost"][rows],
        "cost": _row_costs(arr, rows),
    })


SCHEDULE_ROW_SUFFIX = "#schedule"


def _schedule_row(vm: VmRecord, f: FindingView) -> dict[str, Any]:
    """A schedule proposal as its own recommendation row (kind "schedule"), saving after any resize."""
    return {
        "id": vm.uuid + SCHEDULE_ROW_SUFFIX, "name": vm.name, "host": vm.host, "labels": labels_text(vm.labels),
        "finding": "schedule", "current_type": f.current_type or "", "recommended_type": f"on {f.schedule}",
        "target_vcpus": None, "target_memory_gib": None, "monthly_savings": _round(f.schedule_savings, 2),
        "risk": f.schedule_risk, "options": f"pattern {f.pattern}; stop outside the window (hourly billing)",
        "reason": f.schedule_risk_text, "excluded": "",
    }


STORAGE_ROW_SUFFIX = "#storage"


def _storage_row(vm: VmRecord, f: FindingView, advice: StorageAdvice) -> dict[str, Any]:
    """Storage advice as its own recommendation row (kind "storage"): class and capacity, priced per month."""
    size = (f"{advice.recommended_capacity_bytes / 1e9:,.0f} GB" if advice.recommended_capacity_bytes is not None
            else f"{advice.capacity_bytes / 1e9:,.0f} GB")
    return {
        "id": vm.uuid + STORAGE_ROW_SUFFIX, "name": vm.name, "host": vm.host, "labels": labels_text(vm.labels),
        "finding": "storage", "action": "none", "current_type": f"{advice.current_class}, "
        f"{advice.capacity_bytes / 1e9:,.0f} GB", "recommended_type": f"{advice.recommended_class}, {size}",
        "target_vcpus": None, "target_memory_gib": None, "monthly_savings": _round(advice.monthly_savings, 2),
        "savings_pct": _round(100.0 * advice.monthly_savings / advice.monthly_cost if advice.monthly_cost else None,
                              1),
        "risk": "low", "options": f"used bytes from {advice.used_source}; a volume is resized by its owner",
        "reason": advice.reason, "excluded": "yes" if f.excluded else "",
    }


def _round(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _group_max(code: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per-code maximum of the finite values; NaN for codes without one."""
    out = np.full(n, -np.inf)
    finite = np.isfinite(values)
    np.maximum.at(out, code[finite], values[finite])
    return np.where(np.isneginf(out), np.nan, out)


def _group_percentile(code: np.ndarray, values: np.ndarray, n: int, q: float) -> np.ndarray:
    """Per-code q-quantile (0..1, linear interpolation like numpy) of the finite values; NaN when none."""
    finite = np.isfinite(values)
    c, v = code[finite], values[finite]
    order = np.lexsort((v, c))
    c, v = c[order], v[order]
    counts = np.bincount(c, minlength=n)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out = np.full(n, np.nan)
    has = counts > 0
    pos = (counts[has] - 1) * q
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, counts[has] - 1)
    base = starts[has]
    out[has] = v[base + lo] + (pos - lo) * (v[base + hi] - v[base + lo])
    return out


def _select(vms: Sequence[VmRecord], filters: Filters) -> tuple[str, ...]:
    wanted: dict[str, set[str]] = {}
    for pair in filters.labels:
        key, _, value = pair.partition("=")
        wanted.setdefault(key, set()).add(value)
    hosts = set(filters.hosts)
    out = []
    for vm in vms:
        if hosts and vm.host not in hosts:
            continue
        labels = vm.labels or {}
        if all(labels.get(k) in values for k, values in wanted.items()):
            out.append(vm.uuid)
    return tuple(out)
