"""Storage advice: each VM's volume class and capacity against its disk demand and filesystem use."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analytics.catalogue import HOURS_PER_MONTH, StoragePrices
from analytics.frames import numeric_series, window_rows
from analytics.rightsizing.batch import stacked
from collector.model import VmRecord
from core.settings import SignalSettings


@dataclass(frozen=True, slots=True)
class StorageAdvice:
    """Storage right-sizing of one VM (all disks together): class by P99 load and unused capacity."""

    vm_uuid: str
    capacity_bytes: float
    used_bytes: float | None  # guest filesystem use, else image allocation; None when unknown
    used_source: str  # "guest-agent" | "allocation" | "unknown"
    iops_p99: float | None
    bps_p99: float | None
    current_class: str
    needed_class: str | None  # None: load unknown, or beyond every published class
    recommended_capacity_bytes: float | None
    monthly_cost: float
    recommended_monthly_cost: float
    monthly_savings: float
    currency: str
    reason: str

    @property
    def recommended_class(self) -> str:
        """The class to move to (the current one when the load is unknown or beyond every class)."""
        return self.needed_class or self.current_class

    @property
    def is_change(self) -> bool:
        """True when moving class or shrinking capacity saves money."""
        return self.monthly_savings > 0

    def as_json(self) -> dict[str, object]:
        """The advice with units in the field names (recommend JSON, API)."""
        return {
            "capacity_bytes": self.capacity_bytes, "used_bytes": self.used_bytes, "used_source": self.used_source,
            "iops_p99": self.iops_p99, "bytes_per_second_p99": self.bps_p99,
            "current_class": self.current_class, "recommended_class": self.recommended_class,
            "recommended_capacity_bytes": self.recommended_capacity_bytes, "monthly_cost": self.monthly_cost,
            "recommended_monthly_cost": self.recommended_monthly_cost, "monthly_savings": self.monthly_savings,
            "currency": self.currency, "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class StorageRules:
    """What storage advice needs beside the rollups: prices, the class disks are billed at, guest fs use."""

    prices: StoragePrices
    current_class: str
    guest_fs_used_bytes: Mapping[str, float] = field(default_factory=dict)


def storage_advice(hours: pd.DataFrame, vms: Sequence[VmRecord], prices: StoragePrices, current_class: str,
                   settings: SignalSettings, *, now: pd.Timestamp, lookback_days: float,
                   guest_fs_used: Mapping[str, float] | None = None) -> dict[str, StorageAdvice]:
    """Per VM with a known disk capacity: the class its P99 load needs and the capacity it never used."""
    w = window_rows(hours, now, lookback_days)
    if w.empty:
        return {}
    codes, uuids = pd.factorize(w["vm"].astype(str))  # VMs in order of first appearance
    n = len(uuids)
    cap = _last_known(codes, numeric_series(w, "disk_capacity_bytes").to_numpy(), n)
    alloc = _last_known(codes, numeric_series(w, "disk_allocation_bytes").to_numpy(), n)
    iops = group_quantile(codes, numeric_series(w, "disk_iops_p99").to_numpy(), n, 0.99)
    bps = group_quantile(codes, numeric_series(w, "disk_bps_p99").to_numpy(), n, 0.99)
    out: dict[str, StorageAdvice] = {}
    known = {vm.uuid for vm in vms}
    for k, uuid in enumerate(uuids.tolist()):
        if uuid not in known or math.isnan(cap[k]):
            continue
        fs = (guest_fs_used or {}).get(uuid)
        used, source = ((fs, "guest-agent") if fs is not None else
                        (float(alloc[k]), "allocation") if not math.isnan(alloc[k]) else (None, "unknown"))
        out[uuid] = _advise(uuid, float(cap[k]), used, source, _or_none(iops[k]), _or_none(bps[k]), prices,
                            current_class, settings)
    return out


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _last_known(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per group ``0..n-1``: its last value that is not NaN, in row order (NaN when it has none)."""
    out = np.full(n, np.nan)
    known = ~np.isnan(values)
    out[codes[known]] = values[known]  # fancy assignment: the last write of each group wins
    return out


def group_quantile(codes: np.ndarray, values: np.ndarray, n: int, q: float) -> np.ndarray:
    """Per group ``0..n-1``: ``np.quantile`` of its values that are not NaN at ``q`` (0..1, linear), bit for bit
    numpy's; NaN for a group without any. Groups of one length are reduced together
    (:func:`analytics.rightsizing.batch.stacked`) instead of one call per group."""
    known = ~np.isnan(values)
    c, v = codes[known], values[known]
    order = np.argsort(c, kind="stable")
    return stacked(c[order], v[order], n, _quantile_rows(q))


def _quantile_rows(q: float) -> Callable[[np.ndarray], np.ndarray]:
    """Row-wise ``np.quantile(row, q)``: the two order statistics it reads, and numpy's interpolation (from the
    upper value past the midpoint)."""

    def rows(block: np.ndarray) -> np.ndarray:
        pos = q * (block.shape[1] - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, block.shape[1] - 1)
        t = pos - lo
        ordered = np.partition(block, sorted({lo, hi}), axis=1)
        a, b = ordered[:, lo], ordered[:, hi]
        diff = b - a
        result: np.ndarray = b - diff * (1 - t) if t >= 0.5 else a + diff * t
        return result

    return rows


def needed_class(prices: StoragePrices, iops: float, bps: float) -> str | None:
    """The cheapest performance class whose published IOPS and throughput limits both cover the load."""
    fitting = [c for c, (max_iops, max_bps) in prices.class_limits.items() if max_iops >= iops and max_bps >= bps]
    return min(fitting, key=lambda c: prices.per_disk_hour.get(c, math.inf)) if fitting else None


def _advise(uuid: str, cap: float, used: float | None, source: str, iops: float | None, bps: float | None,
            prices: StoragePrices, current_class: str, settings: SignalSettings) -> StorageAdvice:
    cls = needed_class(prices, iops, bps) if iops is not None and bps is not None else None
    target_class = cls or current_class
    new_cap = cap
    if used is not None:
        wanted_gb = math.ceil(max(used * (1 + settings.storage_headroom), settings.storage_min_bytes) / 1e9)
        new_cap = min(cap, wanted_gb * 1e9)
    before = prices.disk_price_per_hour(cap, current_class) * HOURS_PER_MONTH
    after = prices.disk_price_per_hour(new_cap, target_class) * HOURS_PER_MONTH
    parts = []
    if iops is not None and bps is not None:
        parts.append(f"P99 {iops:.0f} IOPS and {bps / 1e6:.1f} MB/s need class {cls or 'beyond every class'}"
                     f" (now {current_class})")
    else:
        parts.append(f"disk load unknown: class stays {current_class}")
    if used is None:
        parts.append("capacity use unknown (no guest agent answered and no allocation reported)")
    else:
        parts.append(f"{used / 1e9:.1f} GB used of {cap / 1e9:.1f} GB ({source}); with "
                     f"{settings.storage_headroom:.0%} headroom {new_cap / 1e9:.0f} GB")
    return StorageAdvice(uuid, cap, used, source, iops, bps, current_class, cls, new_cap if used else None,
                         round(before, 2), round(after, 2), round(before - after, 2), prices.currency,
                         "; ".join(parts))
