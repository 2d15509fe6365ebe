"""The dashboard's cached snapshot: one read of the store plus analytics, rebuilt in the background.

A *snapshot* (inventory, the hourly frame of the loaded window, its cost frame, findings and backup
findings) is built once and then rebuilt in a background thread when a request finds it older than
``ttl_s`` (or five times its build time, whichever is longer); readers keep using the previous snapshot
meanwhile, so no callback waits for a rebuild. Views derived from a snapshot are memoised inside it
(:meth:`Snapshot.memoised`), so they vanish with it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from analytics.catalogue import CsvPriceCatalogue, StoragePrices
from analytics.costs import fleet_costs
from analytics.frames import epoch_ns, sorted_by_vm_and_time, sorted_codes
from collector.errors import RightsizerError, StoreError
from collector.heap import release_free_memory
from collector.model import VmRecord, VmState
from collector.store.base import TimeSeriesStore
from core.access import in_scope
from core.settings import Settings
from dashboard.views import HOUR_S, RANGES, BackupView, FindingView

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Views kept per snapshot (least recently used dropped first).
MEMO_SIZE = 256
#: How far back from the newest data a raw sample still counts as "now" (a few collection cycles).
NOW_WINDOW = timedelta(minutes=15)
#: The hour columns the snapshot's readers use: costs, the views, right-sizing (strategies, idle, signals,
#: regret), backup churn and the VM page. The others (sample counts, swap and fault totals, disk request counts
#: and times) are not read from the store.
SNAPSHOT_COLUMNS: tuple[str, ...] | None = (
    "running_s", "vcpus", "memory_bytes", "cpu_mean_vcpus", "cpu_p95_vcpus", "cpu_max_vcpus",
    "memory_used_max_bytes", "memory_used_mean_bytes", "disk_read_bytes", "disk_write_bytes", "net_rx_bytes",
    "net_tx_bytes", "disk_capacity_bytes", "cpu_delay_mean_vcpus", "cpu_delay_max_vcpus", "major_faults_max_ps",
    "swap_max_bps", "disk_iops_p99", "disk_bps_p99", "disk_allocation_bytes",
)
#: Seconds a short first window waits for its views to be warmed (``start_refresh``) before a request starts
#: reading the full window: the first pages do not share the CPU with the full read.
FIRST_GRACE_S = 5.0
#: The first snapshot of a large fleet covers only this much (see ``build_snapshot``'s ``quick_above_vm_hours``).
QUICK_WINDOW = timedelta(hours=24)


def prepared_hours(hours: pd.DataFrame, vms: Sequence[VmRecord], columns: Sequence[str] | None) -> pd.DataFrame:
    """A store's hourly frame as the snapshot keeps it: the read columns, sorted by VM and time, the VM column
    categorical, only inventory VMs."""
    if columns is not None:
        kept = {"vm", "ts", *columns}
        hours = hours[[c for c in hours.columns if c in kept]]
    hours = _categorical_vm(sorted_by_vm_and_time(hours))
    known = {vm.uuid for vm in vms}
    if len(hours) and not hours["vm"].isin(known).all():
        hours = hours[hours["vm"].isin(known)].reset_index(drop=True)
        hours["vm"] = hours["vm"].cat.remove_unused_categories()
    return hours


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
    hours: pd.DataFrame  # hour frame of the whole window, sorted by (vm, ts); ``vm`` categorical
    arrays: Mapping[str, np.ndarray]  # per row of ``hours``: VM code, hour, costs (of fleet_costs), utilisation
    latest_cost: Mapping[str, tuple[str | None, str, float | None, float]]  # type, source, price, total/h
    findings: Mapping[str, FindingView]
    backups: Mapping[str, BackupView]
    label_options: tuple[str, ...]
    host_options: tuple[str, ...]
    running_now: frozenset[str] = frozenset()  # VMs whose newest raw sample (see NOW_WINDOW) is running
    complete: bool = True  # False: a first, short window (QUICK_WINDOW) without findings; the full one follows
    memo: OrderedDict[Hashable, Any] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    fleet: Snapshot | None = None  # a scope's view: the whole fleet's snapshot it was cut from
    scoped: dict[tuple[str, ...], Snapshot] = field(default_factory=dict)  # views cut from this one, by scope

    def mark_stale(self) -> None:
        """Have the next read rebuild the (whole fleet's) snapshot in the background, e.g. after a write."""
        (self.fleet or self).built_at = -math.inf

    def within(self, scope: Sequence[str]) -> Snapshot:
        """This snapshot cut to the VMs inside a label ``scope`` (``core.access``); itself when the scope is empty.

        The cut holds only the scope's VMs, hours, costs, findings, backups and filter options, so every view
        derived from it - pages, tables, charts, CSV exports - sees nothing else. Made once per snapshot and
        scope, and memoised views then live in the cut.
        """
        key = tuple(sorted(set(scope)))
        if not key:
            return self
        with self.lock:
            found = self.scoped.get(key)
        if found is not None:
            return found
        cut = _cut(self, key)
        with self.lock:
            return self.scoped.setdefault(key, cut)

    def memoised(self, key: Hashable, compute: Callable[[], T]) -> T:
        """Return the value memoised under ``key``, computing it (outside the lock) when missing."""
        with self.lock:
            if key in self.memo:
                self.memo.move_to_end(key)
                return self.memo[key]  # type: ignore[no-any-return]
        value = compute()
        with self.lock:
            self.memo[key] = value
            while len(self.memo) > MEMO_SIZE:
                self.memo.popitem(last=False)
        return value


def _cut(snap: Snapshot, scope: tuple[str, ...]) -> Snapshot:
    vms = tuple(vm for vm in snap.vms if in_scope(vm.labels, scope))
    kept = {vm.uuid for vm in vms}
    n = len(snap.vms)
    keep_code = np.zeros(n + 1, dtype=bool)  # by old code; the trailing slot is "no VM"
    new_code = np.full(n + 1, len(vms), dtype=np.int32)
    for i, vm in enumerate(vms):
        old = snap.codes[vm.uuid]
        keep_code[old] = True
        new_code[old] = i
    hours = snap.hours
    if len(hours):
        hours = hours[hours["vm"].isin(kept).to_numpy()].reset_index(drop=True)
        hours["vm"] = hours["vm"].cat.remove_unused_categories()
    arrays: dict[str, np.ndarray] = {}
    if "code" in snap.arrays:
        rows = keep_code[snap.arrays["code"]]
        arrays = {name: column[rows] for name, column in snap.arrays.items()}
        arrays["code"] = new_code[snap.arrays["code"][rows]]
    elif snap.arrays:
        raise ValueError("a snapshot's arrays have no 'code' column; it cannot be cut to a scope")
    return Snapshot(
        built_at=snap.built_at, now=snap.now, cost_now=snap.cost_now, anchor=snap.anchor,
        window_start=snap.window_start, window_end=snap.window_end, vms=vms,
        by_uuid={vm.uuid: vm for vm in vms}, codes={vm.uuid: i for i, vm in enumerate(vms)}, hours=hours,
        arrays=arrays, latest_cost={u: c for u, c in snap.latest_cost.items() if u in kept},
        findings={u: f for u, f in snap.findings.items() if u in kept},
        backups={u: b for u, b in snap.backups.items() if u in kept},
        label_options=tuple(sorted({p for vm in vms for p in _label_pairs(vm)})),
        host_options=tuple(sorted({vm.host for vm in vms})),
        running_now=frozenset(u for u in snap.running_now if u in kept), complete=snap.complete, fleet=snap,
    )


def _floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _month_start(ts: datetime) -> datetime:
    return ts.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _label_pairs(vm: VmRecord) -> list[str]:
    return [f"{k}={v}" for k, v in sorted((vm.labels or {}).items())]




def build_snapshot(settings: Settings, store: TimeSeriesStore, catalogue: CsvPriceCatalogue,
                   storage: StoragePrices, clock: Callable[[], datetime], *,
                   quick_above_vm_hours: int | None = None,
                   analyse: Callable[[Snapshot], object] | None = None) -> Snapshot:
    """Read the inventory and the loaded window's hourly rollups and price them; findings come later.

    The window ends at the end of the newest data's hour and covers the longest range (and the hour before it)
    and month-to-date.
    With ``quick_above_vm_hours``, a fleet whose window holds more VM-hours than that gets an incomplete
    snapshot of the last ``QUICK_WINDOW`` only (``complete=False``), read in a fraction of the time.
    Only the ``SNAPSHOT_COLUMNS`` are read. ``analyse`` is called with a complete snapshot as soon as its
    hours are read, before they are priced (its ``arrays`` and ``latest_cost`` are still empty): findings,
    which read the hours only, then never share the memory with the cost frame and the per-row arrays.
    Raises the store's RightsizerError subclasses.
    """
    now = clock()
    vms = tuple(store.vms())
    span = store.time_range()
    anchor = min(span[1], now) if span is not None else now
    if span is not None and span[1] < now - timedelta(days=2):
        anchor = span[1]  # imported or stale history: show where the data is
    window_end = _floor_hour(anchor) + timedelta(hours=1)
    longest = max(RANGES.values())
    # one hour more than the longest range: a lookback of that length judged as of the newest data (a time within
    # its hour) starts inside the window, so findings over it read these hours, not the store again
    window_start = min(window_end - longest - timedelta(hours=1), _month_start(anchor))
    window_h = (window_end - window_start).total_seconds() / HOUR_S
    complete = quick_above_vm_hours is None or len(vms) * window_h <= quick_above_vm_hours
    if not complete:
        window_start = window_end - QUICK_WINDOW
    columns = SNAPSHOT_COLUMNS  # None reads and keeps every column (tests compare both)
    hours = prepared_hours(store.frame(window_start, window_end, resolution="hour", columns=columns), vms, columns)
    known = {vm.uuid for vm in vms}
    # Costs and month figures count up to the wall clock, or to the end of the data's last hour when the
    # data is older (demo, imports): then every stored hour is complete.
    cost_now = min(now, window_end)
    try:
        raw = store.frame(anchor - NOW_WINDOW, anchor + timedelta(seconds=1), resolution="raw")
        running_now = _running_now(raw, known)
    except StoreError:  # a source serving hourly rollups only (PromQL): the inventory's state
        running_now = frozenset(vm.uuid for vm in vms if vm.state is VmState.RUNNING)
    snap = Snapshot(
        built_at=time.monotonic(),
        now=now,
        cost_now=cost_now,
        anchor=anchor,
        window_start=window_start,
        window_end=window_end,
        vms=vms,
        by_uuid={vm.uuid: vm for vm in vms},
        codes={vm.uuid: i for i, vm in enumerate(vms)},
        hours=hours,
        arrays={},
        latest_cost={},
        findings={},
        backups={},
        label_options=tuple(sorted({p for vm in vms for p in _label_pairs(vm)})),
        host_options=tuple(sorted({vm.host for vm in vms})),
        running_now=running_now,
        complete=complete,
    )
    if analyse is not None and complete:
        analyse(snap)
    costs = fleet_costs(hours, vms, catalogue, storage, settings.costs, now=cost_now)
    costs = costs.reset_index(drop=True)
    if not _same_vm_rows(costs, hours):
        costs = hours[["vm", "ts"]].merge(costs, on=["vm", "ts"], how="left")
    snap.latest_cost = _latest_cost(costs)
    arrays = _cost_arrays(costs)
    del costs  # the views read its columns from ``arrays``; dropped before the usage columns are made
    arrays.update(_usage_arrays(hours, snap.codes, window_start))
    snap.arrays = arrays
    snap.built_at = time.monotonic()
    return snap


def hours_since(store: TimeSeriesStore, snap: Snapshot, start: pd.Timestamp, end: datetime) -> pd.DataFrame:
    """The snapshot's hourly rows in [start, end), read from ``store`` (once per snapshot) when ``start`` is before
    the loaded window - a 93-day lookback - with the columns and VMs the snapshot keeps."""
    hours = snap.hours
    if not len(hours) or start >= pd.Timestamp(snap.window_start):
        return hours[(hours["ts"] >= start) & (hours["ts"] < end)] if len(hours) else hours

    def read() -> pd.DataFrame:
        frame = store.frame(start.to_pydatetime(), end, resolution="hour", columns=SNAPSHOT_COLUMNS)
        return prepared_hours(frame, snap.vms, SNAPSHOT_COLUMNS)

    frame: pd.DataFrame = snap.memoised(("hours-since", start, end), read)
    return frame[(frame["ts"] >= start) & (frame["ts"] < end)] if len(frame) else frame


class SnapshotCache:
    """Holds the current snapshot; builds it on first use and refreshes it in a background thread.

    ``build`` makes a complete snapshot (it may take seconds on a big fleet); ``warmers`` run after every
    rebuild so users hit a warm cache. Thread-safe: at most one background refresh runs at a time.
    """

    def __init__(self, build: Callable[[], Snapshot], *, ttl_s: float = 60.0,
                 first: Callable[[], Snapshot] | None = None) -> None:
        self._build = build
        self._first = first or build
        self.first_build_s = 0.0
        self.ttl_s = ttl_s
        self._snapshot: Snapshot | None = None
        self._warmers: list[Callable[[], object]] = []
        self._build_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._refreshing = False
        self._refresher: threading.Thread | None = None
        self.last_build_s = 0.0
        self.last_error: str | None = None
        self._failed_at = -math.inf  # monotonic time of the last failed refresh

    def get(self) -> Snapshot:
        """Return the current snapshot; build it now if there is none, refresh it in the background if stale."""
        snap = self._snapshot
        if snap is None:
            with self._build_lock:
                if self._snapshot is None:
                    self._snapshot = self._timed_build(self._first)
                    self.first_build_s = self.last_build_s
                return self._snapshot
        if not snap.complete:  # a short first window: the full one is read in the background (start_refresh)
            waited_s = time.monotonic() - max(snap.built_at, self._failed_at + self.ttl_s - FIRST_GRACE_S)
            if waited_s > FIRST_GRACE_S and self._snapshot is snap:  # after a failure: retry after ttl_s
                self.start_refresh()
            return snap
        # A rebuild of a big fleet takes seconds of CPU: refresh at most every 5 builds' worth of time.
        ttl_s = max(self.ttl_s, 5.0 * self.last_build_s)
        if time.monotonic() - snap.built_at > ttl_s:
            self.start_refresh()
        return snap

    def start_refresh(self) -> None:
        """Rebuild the snapshot in a background thread, unless one is running."""
        with self._state_lock:
            if self._refreshing:
                return
            self._refreshing = True
            self._refresher = threading.Thread(target=self._refresh, name="dashboard-refresh", daemon=True)
        self._refresher.start()

    def wait_for_refresh(self, timeout_s: float = 60.0) -> None:
        """Block until a background refresh in progress (if any) has finished."""
        with self._state_lock:
            refresher = self._refresher
        if refresher is not None:
            refresher.join(timeout_s)

    def refresh(self) -> None:
        """Rebuild the snapshot now (blocking); the old one serves until the new one is in."""
        with self._build_lock:
            self._snapshot = self._timed_build()
        self.run_warmers()
        release_free_memory()  # the old snapshot is gone: its freed pages back to the kernel

    def add_warmer(self, warmer: Callable[[], object]) -> None:
        """Run ``warmer`` after every rebuild (e.g. a page's default view)."""
        self._warmers.append(warmer)

    def run_warmers(self) -> None:
        """Run every warmer once."""
        for warmer in self._warmers:
            warmer()

    def _timed_build(self, build: Callable[[], Snapshot] | None = None) -> Snapshot:
        started = time.perf_counter()
        snap = (build or self._build)()
        self.last_build_s = time.perf_counter() - started
        log.info("dashboard data built in %.2f s: %d VMs, %d VM-hours%s", self.last_build_s, len(snap.vms),
                 len(snap.hours), "" if snap.complete else f" (first {QUICK_WINDOW}; the full window follows)")
        return snap

    def _refresh(self) -> None:
        try:
            self.refresh()
            self.last_error = None
        except RightsizerError as exc:  # keep serving the previous snapshot
            self.last_error = str(exc)
            self._failed_at = time.monotonic()
            log.warning("dashboard refresh failed, keeping the previous data: %s", exc)
        finally:
            with self._state_lock:
                self._refreshing = False


def finite_or_none(value: Any) -> float | None:
    """Return ``value`` as a finite float, or None when it is not a finite number."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _categorical_vm(hours: pd.DataFrame) -> pd.DataFrame:
    """``hours`` with its ``vm`` column categorical (an integer code per row instead of a string pointer)."""
    if isinstance(hours["vm"].dtype, pd.CategoricalDtype):
        return hours
    codes, names = sorted_codes(hours["vm"])
    hours["vm"] = pd.Categorical.from_codes(codes.astype(np.int32), categories=names)
    return hours


def _same_vm_rows(costs: pd.DataFrame, hours: pd.DataFrame) -> bool:
    """Whether ``costs`` has ``hours``' rows in its order (the same VM on every row), by categorical codes."""
    if len(costs) != len(hours):
        return False
    a, b = costs["vm"], hours["vm"]
    if (isinstance(a.dtype, pd.CategoricalDtype) and isinstance(b.dtype, pd.CategoricalDtype)
            and a.cat.categories.equals(b.cat.categories)):
        return bool((a.cat.codes.to_numpy() == b.cat.codes.to_numpy()).all())
    return bool((a.to_numpy() == b.to_numpy()).all())


def _cost_arrays(costs: pd.DataFrame) -> dict[str, np.ndarray]:
    """``priced``, ``compute_cost`` (0 where no machine type priced the hour) and ``storage_cost`` per row.

    A row's cost is ``compute_cost + storage_cost`` (fleet_costs' ``cost``).
    """
    compute = costs["compute_cost"].to_numpy(dtype=float) if len(costs) else np.zeros(0)
    storage = costs["storage_cost"].to_numpy(dtype=float) if len(costs) else np.zeros(0)
    return {"priced": ~np.isnan(compute), "compute_cost": np.nan_to_num(compute),
            "storage_cost": np.nan_to_num(storage)}


def _usage_arrays(hours: pd.DataFrame, codes: Mapping[str, int], window_start: datetime) -> dict[str, np.ndarray]:
    """Flat numpy columns for fast per-hour sums (np.bincount) over any VM subset: VM code, hour of the
    window and the utilisation columns, per row of ``hours``."""
    if len(hours) == 0:
        empty_i = np.zeros(0, dtype=np.int32)
        return {"code": empty_i, "hour": empty_i, **{k: np.zeros(0) for k in (
            "cpu_used_vcpus", "cpu_allocated_vcpus", "memory_used_bytes", "memory_allocated_bytes",
            "memory_known_allocated_bytes")}}
    vm = hours["vm"]
    to_code = np.array([codes.get(str(name), len(codes)) for name in vm.cat.categories] + [len(codes)],
                       dtype=np.int32)
    code = to_code[vm.cat.codes.to_numpy()]  # code -1 (no VM) picks the trailing "unknown"
    ts_s = epoch_ns(hours["ts"]) // 1_000_000_000
    hour = ((ts_s - int(window_start.timestamp())) // HOUR_S).astype(np.int32)
    del ts_s
    running = hours["running_s"].fillna(0.0).to_numpy() > 0
    mem_used = hours["memory_used_mean_bytes"].to_numpy(dtype=float)
    mem_alloc = hours["memory_bytes"].fillna(0.0).to_numpy(dtype=float)
    return {
        "code": code,
        "hour": hour,
        "cpu_used_vcpus": np.nan_to_num(hours["cpu_mean_vcpus"].to_numpy(dtype=float)),
        "cpu_allocated_vcpus": np.where(running, hours["vcpus"].fillna(0.0).to_numpy(dtype=float), 0.0),
        "memory_used_bytes": np.nan_to_num(mem_used),
        "memory_allocated_bytes": np.where(running, mem_alloc, 0.0),
        "memory_known_allocated_bytes": np.where(running & np.isfinite(mem_used), mem_alloc, 0.0),
    }


def _running_now(raw: pd.DataFrame, known: set[str]) -> frozenset[str]:
    """VMs (of ``known``) whose newest raw sample in ``raw`` (columns ``vm``, ``ts``, ``state``) is running."""
    if raw.empty:
        return frozenset()
    newest = raw.sort_values("ts", kind="stable").groupby("vm", sort=False).tail(1)
    running = newest[newest["state"].astype(str) == VmState.RUNNING.value]["vm"]
    return frozenset(str(u) for u in running if u in known)


def _latest_cost(costs: pd.DataFrame) -> dict[str, tuple[str | None, str, float | None, float]]:
    """Per VM: machine type, its source, compute price per hour and compute + storage per hour (newest hour).

    The newest hour is each VM's last row (``costs`` comes sorted by VM and time); picked by position, with
    no per-group copy of the fleet-sized frame.
    """
    if costs.empty:
        return {}
    vm = costs["vm"]
    codes = vm.cat.codes.to_numpy() if isinstance(vm.dtype, pd.CategoricalDtype) else pd.factorize(vm)[0]
    if not bool((codes[1:] >= codes[:-1]).all()):
        last_rows = np.flatnonzero(costs.groupby("vm", sort=False, observed=True).cumcount(ascending=False)
                                   .to_numpy() == 0)
    else:
        last_rows = np.flatnonzero(np.append(codes[1:] != codes[:-1], True))
    last = costs.iloc[last_rows[codes[last_rows] >= 0]]
    out: dict[str, tuple[str | None, str, float | None, float]] = {}
    for name, mtype, source, price, storage in zip(
        last["vm"], last["machine_type"], last["type_source"], last["price_per_hour"],
        last["storage_price_per_hour"], strict=True,
    ):
        p = finite_or_none(price)
        out[str(name)] = (mtype if isinstance(mtype, str) else None, str(source), p,
                          (p or 0.0) + (finite_or_none(storage) or 0.0) if p is not None else math.nan)
    return out
