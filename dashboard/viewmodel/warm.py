"""Compute the default view of every page for a new snapshot, before requests see it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dashboard.snapshot import Snapshot
from dashboard.viewmodel import backups, overview, recommendations, vms
from dashboard.views import RANGES, Filters

if TYPE_CHECKING:
    from dashboard.data import DashboardData


def warm_default_views(data: DashboardData, snap: Snapshot) -> None:
    """The views a first visit asks for, memoised on ``snap`` (a range change on the VMs page then only reads)."""
    default = Filters()
    data.memo(snap, ("overview", default), lambda: overview.overview_of(data, snap, default))
    data.memo(snap, ("vm_rows", default), lambda: vms.vm_rows_of(data, snap, default))
    for range_key in RANGES:
        vms.range_stats(data, snap, range_key)
    data.memo(snap, ("recs", (), ()), lambda: recommendations.rec_rows(data, snap, default))
    data.memo(snap, ("backups", (), ()), lambda: backups.backup_rows_of(data, snap, default))
