"""The dashboard's view model: shapes a cached snapshot of the store and analytics for the pages.

Callbacks stay thin: they pass the global filters here and get back frames, rows and numbers to draw.
Fleet views read hourly rollups (``resolution="hour"``), never raw samples. The snapshot and its
background refresh live in ``dashboard.snapshot``, the view values in ``dashboard.views``, the apply
control in ``dashboard.apply`` and the calls into analytics in ``dashboard.adapters``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import numpy as np

from analytics.catalogue import CsvPriceCatalogue, StoragePrices, load_storage_prices
from analytics.placement import PlacementRisk, placement_risks, risk_by_vm
from collector.model import VmRecord
from collector.store.base import TimeSeriesStore
from core.access import Principal
from core.settings import Settings
from core.units import hour_floor
from dashboard.adapters import load_backups, load_findings
from dashboard.apply import ApplyHook
from dashboard.snapshot import Snapshot, SnapshotCache, build_snapshot
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
)

__all__ = [
    "DATA_MODES", "DEFAULT_RANGE", "GIB", "RANGES", "ApplyHook", "BackupView", "DashboardData", "Filters",
    "FindingView", "OptionView", "OverviewView", "Snapshot", "VmDetailView", "csv_safe",
]

T = TypeVar("T")
#: A fleet whose loaded window holds more VM-hours than this is shown in two steps: the last QUICK_WINDOW first
#: (seconds), then the whole window (read and right-sized in the background). 1,000 VMs x 31 days is 744,000.
STAGED_ABOVE_VM_HOURS = 250_000


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
        view_warmer: Callable[[DashboardData, Snapshot], None] | None = None,
        principal: Callable[[], Principal | None] | None = None,
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
        #: computes the default views of a new snapshot before it is shown (dashboard.viewmodel.warm)
        self._view_warmer = view_warmer
        self._cache = SnapshotCache(self._build, ttl_s=ttl_s, first=self._build_first)
        #: who is asking (the dashboard's signed-in user, ``dashboard.signin.current_principal``); None = open
        self.principal: Callable[[], Principal | None] = principal or (lambda: None)

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
        """Return the current snapshot, cut to the asking user's label scope (every view reads it through here);
        build it now if there is none, refresh it in the background if stale."""
        snap = self._cache.get()
        principal = self.principal()
        return snap if principal is None else snap.within(principal.scope)

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
        """Memoise ``compute()`` under ``key`` for the life of the current snapshot (e.g. built figures); per
        user, as built pages say who may write."""
        snap = self.snapshot()
        return self.memo(snap, ("cached", self.principal(), key), compute)

    def _warm_views(self, snap: Snapshot) -> None:
        if self._view_warmer is not None:
            self._view_warmer(self, snap)

    def memo(self, snap: Snapshot, key: Hashable, compute: Callable[[], T]) -> T:
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
        return self.selected(self.snapshot(), filters)

    def selected(self, snap: Snapshot, filters: Filters) -> tuple[str, ...]:
        return self.memo(snap, ("vms", filters.labels, filters.hosts), lambda: _select(snap.vms, filters))

    def range_start(self, snap: Snapshot, range_key: str) -> datetime:
        """Where ``range_key`` starts, within the loaded window (a short first window cuts every range).

        The hour that holds ``cost_now - range``, as ``costs --since 14d``, the API and the report start
        theirs: the same 14 days cost the same on every surface.
        """
        length = RANGES.get(range_key, RANGES[DEFAULT_RANGE])
        return max(hour_floor(snap.cost_now - length), snap.window_start)

    def row_mask(self, snap: Snapshot, filters: Filters, *, with_range: bool = True) -> np.ndarray:
        selected = self.selected(snap, filters)
        arr = snap.arrays
        if len(selected) == len(snap.vms):
            mask = np.ones(len(arr["code"]), dtype=bool)
        else:
            wanted = np.zeros(len(snap.vms) + 1, dtype=bool)
            wanted[[snap.codes[u] for u in selected]] = True
            mask = wanted[arr["code"]]
        if with_range:
            start_h = int((self.range_start(snap, filters.range_key) - snap.window_start).total_seconds()) // HOUR_S
            mask &= arr["hour"] >= start_h
        return mask

    # -- overview ------------------------------------------------------------------------------


    # -- findings per lookback -----------------------------------------------------------------
    def lookback_days(self, lookback: int | str | None) -> int:
        """A valid lookback choice (days): one of ``LOOKBACKS_DAYS``, else ``[rightsizing] lookback_days``."""
        try:
            days = int(lookback) if lookback is not None else 0
        except (TypeError, ValueError, OverflowError):
            days = 0
        return days if days in LOOKBACKS_DAYS else int(self.settings.rightsizing.lookback_days)

    def findings_for(self, snap: Snapshot, lookback: int | str | None) -> Mapping[str, FindingView]:
        days = self.lookback_days(lookback)
        if days == int(self.settings.rightsizing.lookback_days) or not snap.complete:
            return snap.findings
        return self.memo(snap, ("findings", days), lambda: load_findings(self, snap, float(days)))

    # -- VM table ------------------------------------------------------------------------------


    # -- VM detail -----------------------------------------------------------------------------


    # -- recommendations -----------------------------------------------------------------------


    # -- hosts ---------------------------------------------------------------------------------


    # -- backups -------------------------------------------------------------------------------


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
