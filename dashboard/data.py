"""The dashboard's view model: reads the store, calls analytics, and shapes the results for the pages.

Callbacks stay thin: they pass the global filters here and get back frames, rows and numbers to draw.
Fleet views read hourly rollups (``resolution="hour"``), never raw samples.

Caching: a *snapshot* (inventory, the hourly frame of the loaded window, its cost frame, findings and
backup findings) is built once and then rebuilt in a background thread when a request finds it older
than ``ttl_s`` (or five times its build time, whichever is longer); readers keep using the previous
snapshot meanwhile, so no callback waits for a rebuild.
Views derived from a snapshot are memoised per (view, time range, filters) inside the snapshot, so they
vanish with it.
"""

from __future__ import annotations

import csv
import hmac
import io
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from analytics.backups import check_backups
from analytics.catalogue import HOURS_PER_MONTH, CsvPriceCatalogue, StoragePrices, load_storage_prices
from analytics.costs import fleet_costs, summarise_costs
from analytics.recommend import VmFinding, configured_policies, recommend_frame
from collector.config import Settings
from collector.errors import ActionError, RightsizerError
from collector.model import VmRecord, VmState
from collector.store.base import TimeSeriesStore

log = logging.getLogger(__name__)

GIB = 1024**3
HOUR_S = 3600
#: Selectable time ranges (label -> length). The loaded window also always covers month-to-date.
RANGES: Mapping[str, timedelta] = {
    "24h": timedelta(hours=24), "7d": timedelta(days=7), "14d": timedelta(days=14), "30d": timedelta(days=30),
}
DEFAULT_RANGE = "30d"
DATA_MODES: Mapping[str, str] = {
    "live": "Live data from libvirt",
    "demo": "Demo fleet on the libvirt test driver with SYNTHETIC usage history",
    "import": "Imported traces (historical data, not this machine)",
}
#: Other spellings of the modes (``rightsizer serve`` says "imported").
MODE_ALIASES: Mapping[str, str] = {"imported": "import"}
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
T = TypeVar("T")


class ApplyHook(Protocol):
    """Apply one resize through the same path as ``rightsizer apply``; returns a one-line outcome.

    Raises ActionError (ActionSkipped / ActionFailed) or another RightsizerError when it does not apply.
    """

    def __call__(self, vm_uuid: str, machine_type: str, *, actor: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Filters:
    """The global filters: a time range key, ``key=value`` label pairs and host names."""

    range_key: str = DEFAULT_RANGE
    labels: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()

    @classmethod
    def of(cls, range_key: str | None, labels: Iterable[str] | None, hosts: Iterable[str] | None) -> Filters:
        """Normalise raw component values (None, lists in any order) into a hashable key."""
        key = range_key if range_key is not None and range_key in RANGES else DEFAULT_RANGE
        return cls(key, tuple(sorted(set(labels or ()))), tuple(sorted(set(hosts or ()))))


@dataclass(frozen=True, slots=True)
class OptionView:
    """One machine type that covers a VM's need."""

    machine_type: str
    vcpus: int
    memory_bytes: int
    price_per_month: float
    monthly_savings: float


@dataclass(frozen=True, slots=True)
class FindingView:
    """A VM's right-sizing result, flattened for display."""

    vm_uuid: str
    finding: str
    current_type: str | None
    recommended_type: str | None
    monthly_savings: float
    risk: int
    target_vcpus: float | None
    target_memory_bytes: int | None
    recommended_vcpus: int | None = None
    recommended_memory_bytes: int | None = None
    options: tuple[OptionView, ...] = ()
    reasons: Mapping[str, str] = field(default_factory=dict)
    evidence: Mapping[str, str] = field(default_factory=dict)
    excluded: bool = False


@dataclass(frozen=True, slots=True)
class BackupView:
    """A VM's newest backup against its policy.

    ``status``: ok, overdue, never, no-policy, invalid-policy; ``urgency``: none, low, medium, high, critical.
    """

    vm_uuid: str
    policy: str
    policy_h: float | None
    newest: datetime | None
    age_h: float | None
    status: str
    urgency: str = "none"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class OverviewView:
    """Everything the overview page draws, for one filter set; money in ``currency``."""

    currency: str
    spend_hour: pd.DataFrame
    spend_day: pd.DataFrame
    utilisation: pd.DataFrame
    finding_counts: Mapping[str, int]
    range_cost: float
    month_to_date: float
    forecast_month_end: float
    forecast_basis: str
    potential_monthly_savings: float
    upsize_monthly_cost: float
    vms_total: int
    vms_running: int
    unpriced_vms: int


@dataclass(frozen=True, slots=True)
class VmDetailView:
    """One VM: its record, hourly series in the range, cost per day and its finding."""

    vm: VmRecord
    currency: str
    hours: pd.DataFrame
    cost_day: pd.DataFrame
    machine_type: str | None
    type_source: str
    price_per_hour: float | None
    finding: FindingView | None
    backup: BackupView | None


@dataclass
class Snapshot:
    """Everything read and computed for one refresh; views derive from it and are memoised in it."""

    built_at: float  # monotonic seconds
    now: datetime  # wall clock at build time (UTC)
    cost_now: datetime  # "now" for cost and month figures: the wall clock, capped at the window end
    anchor: datetime  # newest data (UTC); ranges end at the end of its hour
    window_start: datetime
    window_end: datetime
    vms: tuple[VmRecord, ...]
    by_uuid: Mapping[str, VmRecord]
    codes: Mapping[str, int]  # VM UUID -> row code in the arrays below
    hours: pd.DataFrame  # hour frame of the whole window, sorted by (vm, ts)
    costs: pd.DataFrame  # fleet_costs of ``hours``, same row order
    arrays: Mapping[str, np.ndarray]
    latest_cost: Mapping[str, tuple[str | None, str, float | None, float]]  # type, source, price, total/h
    findings: Mapping[str, FindingView]
    backups: Mapping[str, BackupView]
    label_options: tuple[str, ...]
    host_options: tuple[str, ...]
    memo: OrderedDict[Hashable, Any] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _month_start(ts: datetime) -> datetime:
    return ts.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _label_pairs(vm: VmRecord) -> list[str]:
    return [f"{k}={v}" for k, v in sorted((vm.labels or {}).items())]


def labels_text(labels: Mapping[str, str] | None) -> str:
    """Labels as ``key=value`` pairs joined by ", " (plain text)."""
    return ", ".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas: text starting with = + - @ TAB CR gets a leading quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


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
    ) -> None:
        self.settings = settings
        self.store = store
        self.catalogue = catalogue
        self.data_mode = MODE_ALIASES.get(data_mode, data_mode)
        self.storage = storage if storage is not None else load_storage_prices()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.ttl_s = ttl_s
        self.currency = getattr(catalogue, "currency", "") or "EUR"
        self._findings_loader = findings_loader or load_findings
        self._backups_loader = backups_loader or load_backups
        self._snapshot: Snapshot | None = None
        self._warmers: list[Callable[[], object]] = []
        self._build_lock = threading.Lock()
        self._refreshing = False
        self._refresher: threading.Thread | None = None
        self.last_build_s = 0.0
        self.last_error: str | None = None

    # -- snapshot ------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Return the current snapshot; build it now if there is none, refresh it in the background if stale."""
        snap = self._snapshot
        if snap is None:
            with self._build_lock:
                if self._snapshot is None:
                    self._snapshot = self._build()
                return self._snapshot
        # A rebuild of a big fleet takes seconds of CPU: refresh at most every 5 builds' worth of time.
        ttl_s = max(self.ttl_s, 5.0 * self.last_build_s)
        if time.monotonic() - snap.built_at > ttl_s and not self._refreshing:
            self._refreshing = True
            self._refresher = threading.Thread(target=self._refresh, name="dashboard-refresh", daemon=True)
            self._refresher.start()
        return snap

    def wait_for_refresh(self, timeout_s: float = 60.0) -> None:
        """Block until a background refresh in progress (if any) has finished."""
        if self._refresher is not None:
            self._refresher.join(timeout_s)

    def refresh(self) -> None:
        """Rebuild the snapshot now (blocking)."""
        with self._build_lock:
            self._snapshot = self._build()
        self._run_warmers()

    def add_warmer(self, warmer: Callable[[], object]) -> None:
        """Run ``warmer`` after every rebuild (e.g. a page's default view), so users hit a warm cache."""
        self._warmers.append(warmer)

    def _run_warmers(self) -> None:
        for warmer in self._warmers:
            warmer()

    def _refresh(self) -> None:
        try:
            with self._build_lock:
                self._snapshot = self._build()
            self._run_warmers()
            self.last_error = None
        except RightsizerError as exc:  # keep serving the previous snapshot
            self.last_error = str(exc)
            log.warning("dashboard refresh failed, keeping the previous data: %s", exc)
        finally:
            self._refreshing = False

    def _build(self) -> Snapshot:
        started = time.perf_counter()
        now = self.clock()
        vms = tuple(self.store.vms())
        span = self.store.time_range()
        anchor = min(span[1], now) if span is not None else now
        if span is not None and span[1] < now - timedelta(days=2):
            anchor = span[1]  # imported or stale history: show where the data is
        window_end = _floor_hour(anchor) + timedelta(hours=1)
        longest = max(RANGES.values())
        window_start = min(window_end - longest, _month_start(anchor))
        hours = self.store.frame(window_start, window_end, resolution="hour")
        hours = hours.sort_values(["vm", "ts"], kind="stable", ignore_index=True)
        known = {vm.uuid for vm in vms}
        if len(hours) and not hours["vm"].isin(known).all():
            hours = hours[hours["vm"].isin(known)].reset_index(drop=True)
        # Costs and month figures count up to the wall clock, or to the end of the data's last hour when the
        # data is older (demo, imports): then every stored hour is complete.
        cost_now = min(now, window_end)
        costs = fleet_costs(hours, vms, self.catalogue, self.storage, self.settings.costs, now=cost_now)
        costs = costs.reset_index(drop=True)
        if len(costs) != len(hours) or not (costs["vm"].to_numpy() == hours["vm"].to_numpy()).all():
            costs = hours[["vm", "ts"]].merge(costs, on=["vm", "ts"], how="left")
        codes = {vm.uuid: i for i, vm in enumerate(vms)}
        arrays = _arrays(hours, costs, codes, window_start)
        latest_cost = _latest_cost(costs)
        snap = Snapshot(
            built_at=time.monotonic(),
            now=now,
            cost_now=cost_now,
            anchor=anchor,
            window_start=window_start,
            window_end=window_end,
            vms=vms,
            by_uuid={vm.uuid: vm for vm in vms},
            codes=codes,
            hours=hours,
            costs=costs,
            arrays=arrays,
            latest_cost=latest_cost,
            findings={},
            backups={},
            label_options=tuple(sorted({p for vm in vms for p in _label_pairs(vm)})),
            host_options=tuple(sorted({vm.host for vm in vms})),
        )
        snap.findings = self._findings_loader(self, snap)
        snap.backups = self._backups_loader(self, snap)
        self._warm_views(snap)
        self.last_build_s = time.perf_counter() - started
        log.info("dashboard data built in %.2f s: %d VMs, %d VM-hours", self.last_build_s, len(vms), len(hours))
        return snap

    def warm(self) -> None:
        """Build the snapshot (if needed), the default views and the warmers' results."""
        self._warm_views(self.snapshot())
        self._run_warmers()

    def cached(self, key: Hashable, compute: Callable[[], T]) -> T:
        """Memoise ``compute()`` under ``key`` for the life of the current snapshot (e.g. built figures)."""
        snap = self.snapshot()
        return self._memo(snap, ("cached", key), compute)

    def _warm_views(self, snap: Snapshot) -> None:
        default = Filters()
        self._memo(snap, ("overview", default), lambda: self._overview(snap, default))
        self._memo(snap, ("vm_rows", default), lambda: self._vm_rows(snap, default))
        self._memo(snap, ("recs", (), ()), lambda: self._rec_rows(snap, default))
        self._memo(snap, ("backups", (), ()), lambda: self._backup_rows(snap, default))

    def _memo(self, snap: Snapshot, key: Hashable, compute: Callable[[], T]) -> T:
        with snap.lock:
            if key in snap.memo:
                snap.memo.move_to_end(key)
                return snap.memo[key]  # type: ignore[no-any-return]
        value = compute()
        with snap.lock:
            snap.memo[key] = value
            while len(snap.memo) > 256:
                snap.memo.popitem(last=False)
        return value

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
        return snap.window_end - RANGES.get(range_key, RANGES[DEFAULT_RANGE])

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
        arr = snap.arrays
        mask = self._row_mask(snap, filters)
        start_h = int((self._range_start(snap, filters.range_key) - snap.window_start).total_seconds()) // HOUR_S
        n_hours = int((snap.window_end - snap.window_start).total_seconds()) // HOUR_S
        hour_idx = arr["hour"][mask]

        def per_hour(name: str) -> np.ndarray:
            return np.bincount(hour_idx, weights=arr[name][mask], minlength=n_hours)[start_h:]

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
        return OverviewView(
            currency=self.currency,
            spend_hour=spend_hour,
            spend_day=spend_day,
            utilisation=util,
            finding_counts=counts,
            range_cost=float(spend_hour["cost"].sum()),
            month_to_date=month[0],
            forecast_month_end=month[1],
            forecast_basis=month[2],
            potential_monthly_savings=savings,
            upsize_monthly_cost=upsize,
            vms_total=len(selected),
            vms_running=running,
            unpriced_vms=unpriced,
        )

    def _month_figures(self, snap: Snapshot, filters: Filters) -> tuple[float, float, str]:
        """Month-to-date, forecast and its basis for the label/host filters (independent of the range)."""
        key = ("month", filters.labels, filters.hosts)

        def compute() -> tuple[float, float, str]:
            mask = self._row_mask(snap, filters, with_range=False)
            frame = snap.costs[mask] if not mask.all() else snap.costs
            selected = self._selected(snap, filters)
            summary = summarise_costs(
                frame, [snap.by_uuid[u] for u in selected], group_by="host", now=snap.cost_now,
                currency=self.currency,
            )
            return summary.month_to_date, summary.forecast_month_end, summary.forecast_basis

        return self._memo(snap, key, compute)

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
        stats = self._range_stats(snap, filters.range_key)
        rows: list[dict[str, Any]] = []
        for uuid in self._selected(snap, filters):
            vm = snap.by_uuid[uuid]
            st = stats.iloc[snap.codes[uuid]]
            mtype, source, _price, per_hour = snap.latest_cost.get(uuid, (None, "unknown", None, math.nan))
            f = snap.findings.get(uuid)
            cpu_p95 = _num(st["cpu_p95_vcpus"])
            mem_max = _num(st["memory_used_max_bytes"])
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
                "range_cost": _round(_num(st["range_cost"]), 2),
                "cpu_p95_vcpus": _round(cpu_p95, 3),
                "cpu_p95_pct": _round(100.0 * cpu_p95 / vm.vcpus if cpu_p95 is not None and vm.vcpus else None, 1),
                "memory_used_gib": _round(mem_max / GIB if mem_max is not None else None, 2),
                "memory_used_pct": _round(
                    100.0 * mem_max / vm.memory_bytes if mem_max is not None and vm.memory_bytes else None, 1),
                "finding": f.finding if f else "(none)",
                "monthly_savings": _round(f.monthly_savings if f else None, 2),
            })
        rows.sort(key=lambda r: (-(r["monthly_savings"] or 0.0), r["name"]))
        return rows

    # -- VM detail -----------------------------------------------------------------------------
    def vm_detail(self, uuid: str, filters: Filters) -> VmDetailView | None:
        """Series, cost and finding of one VM over the range; None when the store does not know it."""
        snap = self.snapshot()
        vm = snap.by_uuid.get(uuid)
        if vm is None:
            return None

        def compute() -> VmDetailView:
            start = pd.Timestamp(self._range_start(snap, filters.range_key))
            rows = snap.arrays["code"] == snap.codes[uuid]
            hours = snap.hours[rows]
            hours = hours[hours["ts"] >= start].reset_index(drop=True)
            costs = snap.costs[rows]
            costs = costs[costs["ts"] >= start]
            cost_day = (costs.assign(ts=costs["ts"].dt.floor("D"))
                        .groupby("ts", as_index=False)[["compute_cost", "storage_cost", "cost"]].sum(min_count=1))
            mtype, source, price, _total = snap.latest_cost.get(uuid, (None, "unknown", None, math.nan))
            return VmDetailView(
                vm=vm, currency=self.currency, hours=hours, cost_day=cost_day.fillna(0.0), machine_type=mtype,
                type_source=source, price_per_hour=price, finding=snap.findings.get(uuid),
                backup=snap.backups.get(uuid),
            )

        return self._memo(snap, ("vm", uuid, filters.range_key), compute)

    # -- recommendations -----------------------------------------------------------------------
    def recommendation_rows(self, filters: Filters) -> list[dict[str, Any]]:
        """Findings that call for action (not optimized), biggest saving first."""
        snap = self.snapshot()
        return self._memo(snap, ("recs", filters.labels, filters.hosts), lambda: self._rec_rows(snap, filters))

    def _rec_rows(self, snap: Snapshot, filters: Filters) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for uuid in self._selected(snap, filters):
            f = snap.findings.get(uuid)
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
                "risk": f.risk,
                "options": "; ".join(
                    f"{o.machine_type} ({o.vcpus} vCPU, {o.memory_bytes / GIB:g} GiB, "
                    f"{o.price_per_month:.2f} {self.currency}/month)" for o in f.options),
                "reason": f.reasons.get("overall", ""),
                "excluded": "yes" if f.excluded else "",
            })
        rows.sort(key=lambda r: (-(r["monthly_savings"] or 0.0), r["name"]))
        return rows

    def recommendations_csv(self, filters: Filters) -> str:
        """The recommendation rows as CSV text (formula-safe), with a currency column."""
        snap = self.snapshot()
        rows = self._memo(snap, ("recs", filters.labels, filters.hosts), lambda: self._rec_rows(snap, filters))
        buf = io.StringIO()
        columns = ["name", "uuid", "host", "labels", "finding", "current_type", "recommended_type",
                   "target_vcpus", "target_memory_gib", "monthly_savings", "currency", "risk", "options",
                   "reason", "cpu_reason", "memory_reason", "excluded"]
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            f = snap.findings[r["id"]]
            values = {**r, "uuid": r["id"], "currency": self.currency,
                      "cpu_reason": f.reasons.get("cpu", ""), "memory_reason": f.reasons.get("memory", "")}
            writer.writerow([csv_safe("" if values.get(c) is None else values[c]) for c in columns])
        return buf.getvalue()

    def apply_choices(self, filters: Filters) -> list[tuple[str, str, list[str]]]:
        """(UUID, VM name, option type names) of findings that could be applied."""
        snap = self.snapshot()
        out = []
        for r in self._memo(snap, ("recs", filters.labels, filters.hosts), lambda: self._rec_rows(snap, filters)):
            f = snap.findings[r["id"]]
            if f.excluded or f.finding not in ("over-provisioned", "under-provisioned", "idle"):
                continue
            names = [o.machine_type for o in f.options] or ([f.recommended_type] if f.recommended_type else [])
            if names:
                out.append((r["id"], r["name"], names))
        return out

    def apply(self, hook: ApplyHook | None, vm_uuid: str | None, machine_type: str | None, token: str | None) -> str:
        """Check the token and call the apply hook; returns the message to show (never raises ActionError)."""
        actions = self.settings.actions
        if not actions.enabled or hook is None:
            return "Applying is disabled: set [actions] enabled = true and restart the dashboard."
        if not actions.token:
            return "Applying needs a token: set [actions] token in the config file."
        if not token or not hmac.compare_digest(token.encode(), actions.token.encode()):
            return "Wrong or missing token; nothing was applied."
        if not vm_uuid or not machine_type:
            return "Choose a VM and a machine type first."
        snap = self.snapshot()
        vm = snap.by_uuid.get(vm_uuid)
        if vm is None:
            return f"VM {vm_uuid!r} is not in the store; reload the page."
        try:
            outcome = hook(vm_uuid, machine_type, actor="dashboard")
        except ActionError as exc:
            return f"{vm.name}: not applied: {exc}"
        except RightsizerError as exc:
            return f"{vm.name}: failed: {exc}"
        snap.built_at = -math.inf  # rebuild in the background on the next read, to show the change
        return f"{vm.name}: {outcome}"

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
                "newest_backup": b.newest.strftime("%Y-%m-%d %H:%M UTC") if b.newest else "never",
                "age_h": _round(b.age_h, 1),
                "status": b.status,
                "urgency": b.urgency,
                "detail": b.detail,
            })
        rows.sort(key=lambda r: (urgency.get(r["urgency"], 9), -(r["age_h"] or 0.0), r["name"]))
        return rows


# -- helpers --------------------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


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


def _arrays(hours: pd.DataFrame, costs: pd.DataFrame, codes: Mapping[str, int],
            window_start: datetime) -> dict[str, np.ndarray]:
    """Flat numpy columns for fast per-hour sums (np.bincount) over any VM subset."""
    n = len(hours)
    if n == 0:
        empty_i = np.zeros(0, dtype=np.int64)
        empty_f = np.zeros(0)
        return {"code": empty_i, "hour": empty_i, **{k: empty_f for k in (
            "compute_cost", "storage_cost", "cpu_used_vcpus", "cpu_allocated_vcpus", "memory_used_bytes",
            "memory_allocated_bytes", "memory_known_allocated_bytes")}}
    code = hours["vm"].map(codes).fillna(len(codes)).to_numpy(dtype=np.int64)
    ts_s = hours["ts"].dt.as_unit("s").astype("int64").to_numpy()
    hour = (ts_s - int(window_start.timestamp())) // HOUR_S
    running = hours["running_s"].fillna(0.0).to_numpy() > 0
    mem_used = hours["memory_used_mean_bytes"].to_numpy(dtype=float)
    mem_alloc = hours["memory_bytes"].fillna(0.0).to_numpy(dtype=float)
    return {
        "code": code,
        "hour": hour.astype(np.int64),
        "compute_cost": np.nan_to_num(costs["compute_cost"].to_numpy(dtype=float)),
        "storage_cost": np.nan_to_num(costs["storage_cost"].to_numpy(dtype=float)),
        "cpu_used_vcpus": np.nan_to_num(hours["cpu_mean_vcpus"].to_numpy(dtype=float)),
        "cpu_allocated_vcpus": np.where(running, hours["vcpus"].fillna(0.0).to_numpy(dtype=float), 0.0),
        "memory_used_bytes": np.nan_to_num(mem_used),
        "memory_allocated_bytes": np.where(running, mem_alloc, 0.0),
        "memory_known_allocated_bytes": np.where(running & np.isfinite(mem_used), mem_alloc, 0.0),
    }


def _latest_cost(costs: pd.DataFrame) -> dict[str, tuple[str | None, str, float | None, float]]:
    """Per VM: machine type, its source, compute price per hour and compute + storage per hour (newest hour)."""
    if costs.empty:
        return {}
    last = costs.groupby("vm", sort=False).tail(1)
    out: dict[str, tuple[str | None, str, float | None, float]] = {}
    for vm, mtype, source, price, storage in zip(
        last["vm"], last["machine_type"], last["type_source"], last["price_per_hour"],
        last["storage_price_per_hour"], strict=True,
    ):
        p = _num(price)
        out[str(vm)] = (mtype if isinstance(mtype, str) else None, str(source), p,
                        (p or 0.0) + (_num(storage) or 0.0) if p is not None else math.nan)
    return out


def monthly(price_per_hour: float) -> float:
    """Monthly figure of an hourly price (the provider's 720 h month)."""
    return price_per_hour * HOURS_PER_MONTH


# -- adapters to analytics --------------------------------------------------------------------------
_BACKUP_STATUS = {"not-required": "no-policy"}


def load_backups(data: DashboardData, snap: Snapshot) -> Mapping[str, BackupView]:
    """Judge every VM's newest backup against its policy (analytics.backups) at the snapshot's time."""
    findings = check_backups(list(snap.vms), data.store.backups(), data.settings.backups, snap.now,
                             hour_frame=snap.hours)
    return {
        f.vm_uuid: BackupView(
            vm_uuid=f.vm_uuid,
            policy=f.policy,
            policy_h=f.max_age_s / 3600.0 if f.max_age_s is not None else None,
            newest=f.newest,
            age_h=f.age_s / 3600.0 if f.age_s is not None else None,
            status=_BACKUP_STATUS.get(f.status, f.status),
            urgency=f.urgency,
            detail=f.reason,
        )
        for f in findings
    }


def load_findings(data: DashboardData, snap: Snapshot) -> Mapping[str, FindingView]:
    """Right-size every VM from the snapshot's hourly rollups (analytics.recommend) and flatten the results.

    Uses the configured strategy, lookback, minimum saving and idle rule, judged at the snapshot's cost time.
    """
    rs = data.settings.rightsizing
    start = pd.Timestamp(snap.cost_now) - pd.Timedelta(days=rs.lookback_days)
    frame = snap.hours[snap.hours["ts"] >= start] if len(snap.hours) else snap.hours
    findings = recommend_frame(
        frame, list(snap.vms), data.catalogue, strategy=rs.strategy, now=snap.cost_now,
        lookback_days=float(rs.lookback_days), idle_settings=data.settings.idle,
        min_monthly_savings=rs.min_monthly_savings, policies=configured_policies(data.settings),
    )
    return {f.uuid: finding_view(f) for f in findings}


def finding_view(f: VmFinding) -> FindingView:
    """Flatten one VmFinding, turning its evidence into labelled text."""
    return FindingView(
        vm_uuid=f.uuid,
        finding=f.finding.value,
        current_type=f.current_type,
        recommended_type=f.target_type,
        monthly_savings=f.monthly_savings,
        risk=f.risk,
        target_vcpus=f.need_vcpus,
        target_memory_bytes=f.need_memory_bytes,
        recommended_vcpus=f.target_vcpus,
        recommended_memory_bytes=f.target_memory_bytes,
        options=tuple(
            OptionView(str(o["machine_type"]), int(o["vcpus"]), int(o["memory_bytes"]),
                       float(o["price_per_month"]), float(o["monthly_savings"]))
            for o in f.options
        ),
        reasons=dict(f.reasons),
        evidence=_evidence(f),
        excluded=f.excluded,
    )


def _evidence(f: VmFinding) -> dict[str, str]:
    ev = f.recommendation.evidence
    out: dict[str, str] = {"Strategy": f.strategy}
    if f.current_type:
        out["Current type"] = f"{f.current_type} ({f.current_type_source})"
    if f.price_before_per_hour is not None:
        after = f" -> {f.price_after_per_hour:.4f}" if f.price_after_per_hour is not None else ""
        out["Price per hour"] = f"{f.price_before_per_hour:.4f}{after} {f.currency}"
    if ev is None:
        return out
    out["Lookback"] = f"{ev.lookback_days:g} days"
    out["Data"] = f"{ev.coverage_hours:.1f} h over {ev.span_days:.1f} days ({ev.samples} hourly points)"
    if ev.cpu is not None:
        out["CPU"] = (f"{ev.cpu.statistic} = {ev.cpu.observed:.3f} vCPU, +{ev.cpu.headroom_fraction:.0%} headroom "
                      f"= {ev.cpu.value:.3f} vCPU; peak {ev.cpu.peak:.3f} vCPU")
    if ev.memory is not None:
        out["Memory"] = (f"{ev.memory.statistic} = {ev.memory.observed / GIB:.2f} GiB, "
                         f"+{ev.memory.headroom_fraction:.0%} headroom = {ev.memory.value / GIB:.2f} GiB; "
                         f"peak {ev.memory.peak / GIB:.2f} GiB")
    for label, trend, scale, unit in (("CPU trend", ev.cpu_trend, 1.0, "vCPU"),
                                      ("Memory trend", ev.memory_trend, GIB, "GiB")):
        if trend is not None:
            out[label] = (f"{trend.slope_per_day / scale:+.3f} {unit}/day over {trend.days} days, projected "
                          f"{trend.projected / scale:.2f} {unit} in {trend.horizon_days:g} days"
                          + (" (growing)" if trend.growing else ""))
    if ev.min_savings_per_month is not None and math.isfinite(ev.min_savings_per_month):
        out["Savings threshold"] = f"{ev.min_savings_per_month:.2f} {f.currency}/month"
    if f.idle is not None:
        share = f.idle.cpu_idle_share
        out["Idle"] = (f"CPU below {f.idle.cpu_threshold_vcpus:g} vCPU for "
                       f"{'?' if share is None else f'{share:.0%}'} of {f.idle.observed_days:.1f} running days")
    return out
