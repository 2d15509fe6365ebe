"""Pay-as-you-go cost per VM and hour: the hours billed, times the machine type's and the disks' prices.

Billing model (STACKIT-style, see data/ and the price notes): a machine type is billed per hour it runs
(``running_s / 3600`` of each hour), and each volume is billed as capacity per GB-hour (GB = 10**9 bytes)
plus a flat per-disk performance-class fee. What a *stopped* VM costs is not published by the provider,
so ``CostSettings.stopped_vm_billing`` chooses: ``none`` (nothing), ``storage-only`` (its disks) or
``full`` (machine type and disks).

Assumptions the data forces on us:

* A VM exists for the whole of every hour it has a row in the hourly rollup (the current hour only up to
  ``now``); hours without a row (collector down, VM deleted) cost nothing because nobody saw them.
* The rollup carries a VM's total disk capacity, not its volumes, so each VM with capacity is charged one
  performance-class fee. Unknown capacity is filled from the VM's nearest known hour, else costs nothing.
* A ``machine_type`` label naming a known type wins for every hour; otherwise each hour is priced as the
  cheapest generally available type covering that hour's vCPUs and memory, so resizes show up in cost
  (:mod:`analytics.type_pricing`).

Totals per group and month live in :mod:`analytics.cost_summary` and :mod:`analytics.forecast`, realised
savings of applied changes in :mod:`analytics.realised`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from analytics.catalogue import PriceCatalogue, StoragePrices
from analytics.frames import epoch_ns, numeric_column, sorted_codes, utc_timestamp, vm_time_order
from analytics.type_pricing import TYPE_SOURCES, price_hours
from collector.errors import InputError
from collector.model import VmRecord
from core.settings import CostSettings

#: Columns of the frame ``fleet_costs`` returns, one row per VM and hour.
COST_COLUMNS: tuple[str, ...] = (
    "vm", "ts", "machine_type", "type_source", "price_per_hour", "running_hours", "present_hours",
    "stopped_hours", "disk_capacity_bytes", "storage_price_per_hour", "compute_cost", "storage_cost", "cost",
)
_HOUR = pd.Timedelta(hours=1)
#: The hour-frame columns :func:`fleet_costs` reads (a store asked for only these may leave the rest NaN).
COST_INPUT_COLUMNS: tuple[str, ...] = ("running_s", "vcpus", "memory_bytes", "disk_capacity_bytes")


def fleet_costs(
    hour_frame: pd.DataFrame,
    vms: Sequence[VmRecord],
    catalogue: PriceCatalogue,
    storage: StoragePrices,
    settings: CostSettings,
    *,
    now: datetime | None = None,
) -> pd.DataFrame:
    """Price every VM-hour of an hourly rollup frame; returns ``COST_COLUMNS`` (money in catalogue currency).

    Rows come back sorted by (vm, ts) with a fresh 0..n-1 index; ``vm``, ``machine_type`` and
    ``type_source`` are categoricals, ``compute_cost`` is NaN for hours no machine type could price
    (``cost`` then holds storage only). ``now`` (UTC) caps the hour containing it to the part already
    elapsed. Raises InputError when ``settings.storage_class`` is not in ``storage``.
    """
    if settings.include_storage and settings.storage_class not in storage.per_disk_hour:
        known = ", ".join(sorted(storage.per_disk_hour)) or "(none)"
        raise InputError(
            f"Storage class {settings.storage_class!r} has no price; set [costs] storage_class to one of {known}"
        )
    if hour_frame.empty:
        return _empty_costs()
    # codes at the width the categorical keeps them: the output's "vm" column takes them without a copy
    vm_codes, vm_names = sorted_codes(hour_frame["vm"], compact=True)
    ts_ns = epoch_ns(hour_frame["ts"])
    order = vm_time_order(vm_codes, ts_ns)
    vm_codes = vm_codes[order]
    ts_ns = ts_ns[order]
    if isinstance(order, slice):  # a view of the input's stamps: the output gets its own
        ts_ns = ts_ns.copy()

    def column(name: str) -> np.ndarray:
        return numeric_column(hour_frame, name, order)

    hours = _billed_hours(_raw_column(hour_frame, "running_s", order), ts_ns, now, settings.stopped_vm_billing)
    type_codes, type_names, prices, source_codes = price_hours(
        vm_codes, list(vm_names), _raw_column(hour_frame, "vcpus", order),
        _raw_column(hour_frame, "memory_bytes", order), vms, catalogue
    )
    cap = column("disk_capacity_bytes")
    if np.isnan(cap).any():
        filled = pd.Series(cap).groupby(vm_codes, sort=False)
        cap = filled.ffill().fillna(filled.bfill()).to_numpy(dtype=float)
    storage_price = _storage_price(cap, storage, settings)
    # the same arithmetic as elementwise expressions, done in place: each fleet-sized temporary is
    # hundreds of MB, so the frame's own columns are the only new arrays
    compute_cost = prices * hours.compute
    storage_cost = np.multiply(storage_price, hours.storage,
                               out=hours.storage if hours.storage_is_temporary else None)
    cost = np.add(compute_cost, storage_cost)
    unpriced = np.isfinite(compute_cost)
    np.logical_not(unpriced, out=unpriced)
    if unpriced.any():  # as nan_to_num(compute_cost) + storage_cost, on the few rows that need it
        cost[unpriced] = np.nan_to_num(compute_cost[unpriced]) + storage_cost[unpriced]
    data = {
        "vm": pd.Categorical.from_codes(vm_codes, categories=vm_names),
        "ts": pd.DatetimeIndex(ts_ns, dtype="datetime64[ns, UTC]", copy=False),  # epoch ns are UTC
        "machine_type": pd.Categorical.from_codes(type_codes, categories=type_names),
        "type_source": pd.Categorical.from_codes(source_codes, categories=list(TYPE_SOURCES)),
        "price_per_hour": prices,
        "running_hours": hours.running,
        "present_hours": hours.present,
        "stopped_hours": hours.stopped,
        "disk_capacity_bytes": cap,
        "storage_price_per_hour": storage_price,
        "compute_cost": compute_cost,
        "storage_cost": storage_cost,
        "cost": cost,
    }
    return pd.DataFrame(data, copy=False)  # one block per column: no 2-D copy of a fleet-sized frame


@dataclass(frozen=True, slots=True)
class _Hours:
    """Per row: running, present and stopped hours (0..1) and the hours billed for compute and storage."""

    running: np.ndarray
    present: np.ndarray
    stopped: np.ndarray
    compute: np.ndarray
    storage: np.ndarray
    storage_is_temporary: bool  # ``storage`` is no other field: it may be overwritten


def _billed_hours(running_s: np.ndarray, ts_ns: np.ndarray, now: datetime | None, rule: str) -> _Hours:
    """The hours of each row: ``running_s / 3600`` clipped to 0..1; present up to ``now`` (an hour starting at
    or after ``now``: none); the rest stopped.

    ``running_s`` may be float32: it is divided in float64, as if converted first. NaN runs 0 h, +-inf 1 h
    and 0 h (as ``nan_to_num`` would give them, without its seven passes over the rows).
    """
    running_h = np.divide(running_s, 3600.0, dtype=np.float64)  # a fresh array: the steps below work in place
    np.clip(running_h, 0.0, 1.0, out=running_h)
    np.fmax(running_h, 0.0, out=running_h)  # NaN -> 0
    present_h = np.ones(len(running_h))
    if now is not None:
        # only hours that start within the hour before ``now`` are cut short; every older hour is present
        # in full (its (now - ts) / 1 h is >= 1 and clips to 1, which no running share exceeds)
        now_ns = utc_timestamp(now).value
        recent = np.flatnonzero(ts_ns > now_ns - _HOUR.value)
        part = np.subtract(now_ns, ts_ns[recent]) / 3.6e12
        np.clip(part, 0.0, 1.0, out=part)
        present_h[recent] = np.maximum(part, running_h[recent])
        # an hour that starts at or after ``now`` is not billed yet (a store returns rows with ts < end, so
        # every surface counts the same hours for the same window)
        later = recent[ts_ns[recent] >= now_ns]
        running_h[later] = 0.0
        present_h[later] = 0.0
    stopped_h = present_h - running_h
    # a stopped hour is billed for compute only under "full", for storage under "full" and "storage-only"
    compute_h = running_h + stopped_h if rule == "full" else running_h
    storage_h = running_h + stopped_h if rule in ("full", "storage-only") else running_h
    return _Hours(running_h, present_h, stopped_h, compute_h, storage_h,
                  storage_is_temporary=storage_h is not running_h)


def _storage_price(cap: np.ndarray, storage: StoragePrices, settings: CostSettings) -> np.ndarray:
    """Per row: capacity per GB-hour plus the class fee for a VM with disks, else 0 (per hour)."""
    if not settings.include_storage:
        return np.zeros(len(cap))
    with np.errstate(invalid="ignore"):  # unknown or infinite capacities are set to 0 below
        price: np.ndarray = np.divide(cap, 1e9)
        price *= storage.per_gb_hour
        price += storage.per_disk_hour[settings.storage_class]
    no_disk = cap > 0
    np.logical_and(no_disk, np.isfinite(cap), out=no_disk)
    np.logical_not(no_disk, out=no_disk)
    price[no_disk] = 0.0
    return price


def _raw_column(frame: pd.DataFrame, name: str, rows: slice | np.ndarray) -> np.ndarray:
    """Column ``name`` picked by ``rows`` at its own float width (float32 stays float32; NaN when absent)."""
    if name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, np.dtype) and column.dtype.kind == "f":
            picked: np.ndarray = column.to_numpy()[rows]
            return picked
    return numeric_column(frame, name, rows)


def _empty_costs() -> pd.DataFrame:
    data: dict[str, object] = {c: np.zeros(0) for c in COST_COLUMNS}
    data["vm"] = pd.Categorical([])
    data["ts"] = pd.DatetimeIndex([], tz=UTC)
    data["machine_type"] = pd.Categorical([])
    data["type_source"] = pd.Categorical([], categories=list(TYPE_SOURCES))
    return pd.DataFrame(data)


def billed_per_hour(compute_per_hour: float, storage_per_hour: float, *, running: bool, rule: str) -> float:
    """What a VM costs per hour now: compute while it runs (or when stopped under ``full``), disks while it
    runs or when stopped under ``full``/``storage-only``. The one rule every "cost per hour now" figure uses
    (the VMs table, the run-rate, ``rightsizer_vm_hourly_cost``)."""
    if running or rule == "full":
        return compute_per_hour + storage_per_hour
    return storage_per_hour if rule == "storage-only" else 0.0
