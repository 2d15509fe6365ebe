"""The VM page's view: one VM's series, cost per day, finding and backup."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analytics.findings.headroom import headroom_text
from dashboard.viewmodel.common import cost_rows, hour_coverage
from dashboard.views import Filters, FindingView, VmDetailView

if TYPE_CHECKING:
    from dashboard.data import DashboardData


def find_vm(data: DashboardData, key: str) -> str | None:
    """The UUID of the VM whose UUID or else name is ``key``; with one name on several hosts, the first
    by host; None when no VM matches."""
    snap = data.snapshot()
    if key in snap.by_uuid:
        return key
    named = sorted((vm.host, vm.uuid) for vm in snap.vms if vm.name == key)
    return named[0][1] if named else None


def vm_detail_view(data: DashboardData, uuid: str, filters: Filters,
                   lookback: int | str | None = None) -> VmDetailView | None:
    """Series, cost and finding (judged over ``lookback`` days) of one VM; None for an unknown VM."""
    snap = data.snapshot()
    vm = snap.by_uuid.get(uuid)
    if vm is None:
        return None

    def compute() -> VmDetailView:
        start = pd.Timestamp(data.range_start(snap, filters.range_key))
        rows = np.flatnonzero(snap.arrays["code"] == snap.codes[uuid])
        rows = rows[(snap.hours["ts"].iloc[rows] >= start).to_numpy(dtype=bool)]
        hours = snap.hours.iloc[rows].reset_index(drop=True)
        hours["vm"] = hours["vm"].astype(str)
        costs = cost_rows(snap, rows)
        costs["hours"] = hour_coverage(costs["ts"], snap.cost_now)  # a partial day is drawn as partial
        cost_day = (costs.assign(ts=costs["ts"].dt.floor("D"))
                    .groupby("ts", as_index=False)[["compute_cost", "storage_cost", "cost", "hours"]]
                    .sum(min_count=1))
        mtype, source, price, _total = snap.latest_cost.get(uuid, (None, "unknown", None, math.nan))
        return VmDetailView(
            vm=vm, currency=data.currency, hours=hours, cost_day=cost_day.fillna(0.0), machine_type=mtype,
            type_source=source, price_per_hour=price, finding=data.findings_for(snap, lookback).get(uuid),
            backup=snap.backups.get(uuid),
        )

    return data.memo(snap, ("vm", uuid, filters.range_key, data.lookback_days(lookback)), compute)


def headroom_line(f: FindingView | None) -> str:
    """The finding's headroom in words, as ``recommend --explain`` says it ("" without a finding or a need)."""
    return headroom_text(f.source.recommendation if f is not None and f.source is not None else None)
