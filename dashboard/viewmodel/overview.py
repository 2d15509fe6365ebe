"""The Overview page's views: spend by hour and day, month to date, forecast, savings headline, hosts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analytics.findings.headline import headline_of
from analytics.forecast import month_figures
from analytics.frames import epoch_ns
from analytics.signals import HostLoad, contention_signals, host_loads
from collector.model import VmState
from collector.store.jsonmeta import stored_host_cpus
from dashboard.snapshot import Snapshot
from dashboard.viewmodel.common import billed_now, hour_coverage, row_costs
from dashboard.views import HOUR_S, Filters, OverviewView

if TYPE_CHECKING:
    from dashboard.data import DashboardData


def overview_view(data: DashboardData, filters: Filters) -> OverviewView:
    """Spend, month-to-date, forecast, savings, utilisation and finding counts for the filters."""
    snap = data.snapshot()
    return data.memo(snap, ("overview", filters), lambda: overview_of(data, snap, filters))


def overview_of(data: DashboardData, snap: Snapshot, filters: Filters) -> OverviewView:
    start_h = int((data.range_start(snap, filters.range_key) - snap.window_start).total_seconds()) // HOUR_S
    n_hours = int((snap.window_end - snap.window_start).total_seconds()) // HOUR_S
    sums = _hour_sums(data, snap, filters)

    def per_hour(name: str) -> np.ndarray:
        return sums[name][start_h:]

    ts = pd.date_range(snap.window_start + timedelta(hours=start_h), periods=n_hours - start_h, freq="h")
    spend_hour = pd.DataFrame({"ts": ts, "compute_cost": per_hour("compute_cost"),
                               "storage_cost": per_hour("storage_cost")})
    spend_hour["cost"] = spend_hour["compute_cost"] + spend_hour["storage_cost"]
    spend_hour["hours"] = hour_coverage(spend_hour["ts"], snap.cost_now)  # < 1: the hour still running
    spend_day = (spend_hour.assign(ts=spend_hour["ts"].dt.floor("D"))
                 .groupby("ts", as_index=False)[["compute_cost", "storage_cost", "cost", "hours"]].sum())
    util = pd.DataFrame({
        "ts": ts,
        "cpu_used_vcpus": per_hour("cpu_used_vcpus"),
        "cpu_allocated_vcpus": per_hour("cpu_allocated_vcpus"),
        "memory_used_bytes": per_hour("memory_used_bytes"),
        "memory_allocated_bytes": per_hour("memory_allocated_bytes"),
        "memory_known_allocated_bytes": per_hour("memory_known_allocated_bytes"),
    })
    selected = data.selected(snap, filters)
    month = _month_figures(data, snap, filters)
    days = range_lookback(data, filters.range_key)
    findings = data.findings_for(snap, days)
    shown = [findings[u] for u in selected if u in findings]
    counts: dict[str, int] = {}
    for f in shown:
        counts[f.finding] = counts.get(f.finding, 0) + 1
    headline = headline_of(shown)
    savings, upsize = headline.gross_monthly_savings, headline.upsize_monthly_cost
    running = sum(1 for u in selected if snap.by_uuid[u].state is VmState.RUNNING)
    unpriced = sum(1 for u in selected if snap.latest_cost.get(u, (None,))[0] is None)
    now_running = [u for u in selected if u in snap.running_now]
    rate_now = _rate_now(snap, selected, data.settings.costs.stopped_vm_billing)
    mtd, forecast, basis = _forecast_now(data, month, rate_now, len(now_running))
    if not snap.complete:  # a short first window: no month figures or findings yet
        mtd = forecast = savings = upsize = math.nan
        basis = data.loading_note()
    return OverviewView(
        currency=data.currency,
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
        headline=headline if snap.complete else None,
        vms_total=len(selected),
        vms_running=running,
        unpriced_vms=unpriced,
        run_rate_now=rate_now,
        running_now=len(now_running),
        lookback_days=days,
    )


def range_lookback(data: DashboardData, range_key: str) -> int:
    """The lookback the Overview judges savings over: its range's days when that is a lookback choice
    (7, 14 or 30 days), else (24 hours: too short to judge) the configured ``[rightsizing] lookback_days``."""
    days = int(range_key[:-1]) if range_key.endswith("d") and range_key[:-1].isdigit() else None
    return data.lookback_days(days)


def _hour_sums(data: DashboardData, snap: Snapshot, filters: Filters) -> Mapping[str, np.ndarray]:
    """Per hour of the window, the sums of the overview's arrays over the selected VMs' rows.

    A range is a tail of these (an hour's sum is over the same rows in the same order), so a change of
    range reuses them; memoised per label and host filter.
    """
    def compute() -> Mapping[str, np.ndarray]:
        arr = snap.arrays
        mask = data.row_mask(snap, filters, with_range=False)
        n_hours = int((snap.window_end - snap.window_start).total_seconds()) // HOUR_S
        hour_idx = arr["hour"] if mask.all() else arr["hour"][mask]
        return {name: np.bincount(hour_idx, weights=arr[name] if mask.all() else arr[name][mask],
                                  minlength=n_hours) for name in _HOUR_SUMS}

    return data.memo(snap, ("hour_sums", filters.labels, filters.hosts), compute)


def _rate_now(snap: Snapshot, selected: Sequence[str], rule: str) -> float:
    """Cost per hour now: each selected VM's billed rate (``billed_now``: compute + disks while it runs in the
    newest raw samples, else what ``[costs] stopped_vm_billing`` bills), the same figure as the VMs table's."""
    rate = 0.0
    for uuid in selected:
        _mtype, _source, price, per_hour = snap.latest_cost.get(uuid, (None, "unknown", None, math.nan))
        rate += billed_now(snap, uuid, price, per_hour, rule) or 0.0
    return rate


def _forecast_now(data: DashboardData, month: tuple[float, float, str, float, float], rate_now: float,
                  running: int) -> tuple[float, float, str]:
    """Month figures; the forecast runs on the current run-rate while the trailing one spans under a day.

    A trailing average over less than a day is diluted by the partial first and current hours; the
    current run-rate (the "Run-rate now" figure) is the better basis until a full day is stored.
    """
    mtd, forecast, basis, rate_hours, remaining_h = month
    if rate_hours >= FORECAST_TRAILING_MIN_H:
        return mtd, forecast, basis
    cur = data.currency
    return mtd, mtd + rate_now * remaining_h, (
        f"month to date {mtd:.2f} {cur} + run-rate now {rate_now:.4f} {cur}/h ({running} VMs running in the "
        f"newest samples, with the disks of the others; the trailing run-rate needs "
        f"{FORECAST_TRAILING_MIN_H:g} h of data, {rate_hours:.1f} h stored) x {remaining_h:.1f} h left "
        "in the month")


def _month_figures(data: DashboardData, snap: Snapshot, filters: Filters) -> tuple[float, float, str, float, float]:
    """Month-to-date, forecast, its basis, the trailing run-rate's hours and the hours left in the month
    for the label/host filters (independent of the range)."""
    key = ("month", filters.labels, filters.hosts)

    def compute() -> tuple[float, float, str, float, float]:
        mask = data.row_mask(snap, filters, with_range=False)
        arr = snap.arrays
        ts_ns = epoch_ns(snap.hours["ts"])
        month = month_figures(ts_ns if mask.all() else ts_ns[mask], row_costs(arr, mask), now=snap.cost_now,
                              currency=data.currency)
        return (month.month_to_date, month.forecast_month_end, month.forecast_basis,
                month.run_rate_hours, month.remaining_hours)

    return data.memo(snap, key, compute)


def host_loads_view(data: DashboardData) -> list[HostLoad]:
    """Each host's vCPUs allocated to running VMs against its CPUs, and its VMs' wait for a host CPU."""
    snap = data.snapshot()
    return data.memo(snap, ("hosts",), lambda: _host_loads(data, snap))


def _host_loads(data: DashboardData, snap: Snapshot) -> list[HostLoad]:
    vms = list(snap.vms)
    hours = snap.hours if snap.complete else snap.hours.iloc[:0]  # vCPU wait is judged over the lookback
    contention = contention_signals(hours, vms, data.settings.signals, now=pd.Timestamp(snap.cost_now),
                                    lookback_days=float(data.lookback_days(None)))
    return host_loads(vms, stored_host_cpus(data.store), contention)


#: Hours of stored data from which the forecast uses the trailing run-rate (before: the current one).
FORECAST_TRAILING_MIN_H = 24.0


# -- helpers --------------------------------------------------------------------------------------
_HOUR_SUMS = ("compute_cost", "storage_cost", "cpu_used_vcpus", "cpu_allocated_vcpus", "memory_used_bytes",
              "memory_allocated_bytes", "memory_known_allocated_bytes")
