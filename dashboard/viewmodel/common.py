"""Helpers the page views share: per-row costs of the snapshot's arrays, rounding for JSON rows."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from analytics.costs import billed_per_hour
from dashboard.snapshot import Snapshot, finite_or_none


def row_costs(arr: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """fleet_costs' ``cost`` of the rows (a mask or positions): compute (0 when unpriced) plus storage."""
    cost: np.ndarray = arr["compute_cost"][rows] + arr["storage_cost"][rows]
    return cost


def cost_rows(snap: Snapshot, rows: np.ndarray) -> pd.DataFrame:
    """fleet_costs' ``ts``, ``compute_cost`` (NaN when unpriced), ``storage_cost`` and ``cost`` of the rows."""
    arr = snap.arrays
    return pd.DataFrame({
        "ts": pd.DatetimeIndex(snap.hours["ts"].iloc[rows]).as_unit("ns"),
        "compute_cost": np.where(arr["priced"][rows], arr["compute_cost"][rows], np.nan),
        "storage_cost": arr["storage_cost"][rows],
        "cost": row_costs(arr, rows),
    })


def hour_coverage(ts: pd.Series | pd.DatetimeIndex, cost_now: object) -> np.ndarray:
    """The share (0..1) of each hour starting at ``ts`` that lies before ``cost_now``: 1 for a past hour, less
    for the hour still running, so that charts can draw a partial hour or day as partial."""
    start_ns = pd.DatetimeIndex(ts).as_unit("ns").asi8
    now_ns = pd.Timestamp(cost_now).as_unit("ns").value
    share: np.ndarray = np.clip((now_ns - start_ns) / 3.6e12, 0.0, 1.0)
    return share


def round_or_none(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def billed_now(snap: Snapshot, uuid: str, price: float | None, per_hour: float, rule: str) -> float | None:
    """What the VM costs per hour now (analytics.costs.billed_per_hour): compute and disks while it runs in the
    newest raw samples, else what ``[costs] stopped_vm_billing`` bills (none, its disks, or everything); None
    when unpriced."""
    total = finite_or_none(per_hour)
    if total is None:
        return None
    compute = finite_or_none(price) or 0.0
    return billed_per_hour(compute, max(total - compute, 0.0), running=uuid in snap.running_now, rule=rule)
