"""The Backups page's view: each selected VM's newest backup against its policy, worst first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dashboard.snapshot import Snapshot
from dashboard.viewmodel.common import round_or_none
from dashboard.views import Filters

if TYPE_CHECKING:
    from dashboard.data import DashboardData


def backup_rows(data: DashboardData, filters: Filters) -> list[dict[str, Any]]:
    """Backup age against policy for each selected VM that has a policy; worst first."""
    snap = data.snapshot()
    return data.memo(snap, ("backups", filters.labels, filters.hosts), lambda: backup_rows_of(data, snap, filters))


def backup_rows_of(data: DashboardData, snap: Snapshot, filters: Filters) -> list[dict[str, Any]]:
    urgency = {"critical": 0, "high": 1, "medium": 2, "low": 3, "none": 4}
    rows: list[dict[str, Any]] = []
    for uuid in data.selected(snap, filters):
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
            "policy_h": round_or_none(b.policy_h, 1),
            "newest_backup": (b.newest.strftime("%Y-%m-%d %H:%M UTC") if b.newest
                              else "unknown" if b.status == "unknown" else "never"),
            "age_h": round_or_none(b.age_h, 1),
            "status": b.status,
            "urgency": b.urgency,
            "detail": b.detail,
        })
    rows.sort(key=lambda r: (urgency.get(r["urgency"], 9), -(r["age_h"] or 0.0), r["name"]))
    return rows
