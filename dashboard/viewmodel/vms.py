"""The VMs page's view: one row per selected VM with its cost, utilisation and finding over the range."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dashboard.snapshot import Snapshot, finite_or_none
from dashboard.viewmodel.common import billed_now, round_or_none
from dashboard.views import GIB, HOUR_S, Filters, labels_text

if TYPE_CHECKING:
    from dashboard.data import DashboardData


def vm_rows(data: DashboardData, filters: Filters) -> list[dict[str, Any]]:
    """One row per selected VM for the VMs grid (plain JSON values, ``id`` = UUID)."""
    snap = data.snapshot()
    return data.memo(snap, ("vm_rows", filters), lambda: vm_rows_of(data, snap, filters))


def range_stats(data: DashboardData, snap: Snapshot, range_key: str) -> pd.DataFrame:
    def compute() -> pd.DataFrame:
        start_h = int((data.range_start(snap, range_key) - snap.window_start).total_seconds()) // HOUR_S
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

    return data.memo(snap, ("range_stats", range_key), compute)


def vm_rows_of(data: DashboardData, snap: Snapshot, filters: Filters) -> list[dict[str, Any]]:
    frame = range_stats(data, snap, filters.range_key)
    stats = {name: frame[name].to_numpy() for name in frame.columns}  # one lookup per value, not a row Series
    rows: list[dict[str, Any]] = []
    rule = data.settings.costs.stopped_vm_billing
    for uuid in data.selected(snap, filters):
        vm = snap.by_uuid[uuid]
        code = snap.codes[uuid]
        st = {name: values[code] for name, values in stats.items()}
        mtype, source, price, per_hour = snap.latest_cost.get(uuid, (None, "unknown", None, math.nan))
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
            "hourly_cost": round_or_none(billed_now(snap, uuid, price, per_hour, rule), 4),
            "range_cost": round_or_none(finite_or_none(st["range_cost"]), 2),
            "cpu_p95_vcpus": round_or_none(cpu_p95, 3),
            "cpu_p95_pct": round_or_none(100.0 * cpu_p95 / vm.vcpus if cpu_p95 is not None and vm.vcpus else None, 1),
            "memory_used_gib": round_or_none(mem_max / GIB if mem_max is not None else None, 2),
            "memory_used_pct": round_or_none(
                100.0 * mem_max / vm.memory_bytes if mem_max is not None and vm.memory_bytes else None, 1),
            "need_vcpus": round_or_none(need, 2),
            "finding": f.finding if f else "(none)",
            "pattern": f.pattern if f else "unknown",
            "schedule": f"on {f.schedule}" if f is not None and f.schedule else "",
            "schedule_savings": round_or_none(f.schedule_monthly_savings if f else None, 2),
            "monthly_savings": round_or_none(f.monthly_savings if f else None, 2),
            "savings_pct": round_or_none(f.savings_pct if f else None, 1),
        })
    rows.sort(key=lambda r: (-(r["monthly_savings"] or 0.0), r["name"]))
    return rows


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
