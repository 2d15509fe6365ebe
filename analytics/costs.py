"""Pay-as-you-go cost per VM and hour, summaries by group, month-to-date, forecast and realised savings.

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
  cheapest generally available type covering that hour's vCPUs and memory, so resizes show up in cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from analytics.catalogue import PriceCatalogue, StoragePrices
from analytics.fleet import MACHINE_TYPE_LABEL, label_value
from analytics.frames import code_dtype, epoch_ns, numeric_column, sorted_codes, vm_time_order
from collector.errors import InputError
from collector.model import VmRecord
from collector.store.base import AuditEntry, TimeSeriesStore
from core.plan import STOP_ACTION
from core.settings import CostSettings

#: Columns of the frame ``fleet_costs`` returns, one row per VM and hour.
COST_COLUMNS: tuple[str, ...] = (
    "vm", "ts", "machine_type", "type_source", "price_per_hour", "running_hours", "present_hours",
    "stopped_hours", "disk_capacity_bytes", "storage_price_per_hour", "compute_cost", "storage_cost", "cost",
)
#: Field metadata key: a nested value's fields are written in place of the field (see reports.to_plain).
FLATTEN = "flatten"
#: Group keys that are not labels.
BUILTIN_GROUPS = ("vm", "host", "machine_type")
#: The forecast extrapolates the cost of this many trailing days.
RUN_RATE_DAYS = 7
_HOUR = pd.Timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class VmCost:
    """One VM's cost over a window; machine type and price are those of its newest hour in it."""

    vm_uuid: str
    name: str
    host: str
    group: str
    machine_type: str | None
    type_source: str
    price_per_hour: float | None
    running_hours: float
    billed_hours: float
    compute_cost: float
    storage_cost: float
    cost: float
    currency: str


@dataclass(frozen=True, slots=True)
class GroupCost:
    """Cost of one group (label value, host or machine type) over a window."""

    key: str
    vms: int
    running_hours: float
    compute_cost: float
    storage_cost: float
    cost: float
    share: float  # of the window's total, 0..1


@dataclass(frozen=True, slots=True)
class MonthFigures:
    """Month to date, the trailing run-rate and the month-end forecast of a set of priced hours."""

    month_start: datetime
    month_to_date: float
    run_rate_per_hour: float
    run_rate_hours: float
    remaining_hours: float
    forecast_month_end: float
    forecast_basis: str


@dataclass(frozen=True, slots=True)
class CostSummary:
    """Totals of a cost frame: the window, per group, per VM, month to date and the month-end forecast."""

    currency: str
    start: datetime | None
    end: datetime
    group_by: str
    total: float
    compute_total: float
    storage_total: float
    groups: tuple[GroupCost, ...]
    per_vm: tuple[VmCost, ...]
    # its fields read as the summary's own in reports (flat keys: month_to_date, forecast_month_end, ...)
    month: MonthFigures = field(metadata={FLATTEN: True})
    unpriced_vms: tuple[str, ...]  # UUIDs with no machine type the catalogue could price


@dataclass(frozen=True, slots=True)
class RealisedSaving:
    """What an applied resize has saved since it was applied: (before - after) x hours."""

    vm_uuid: str
    vm_name: str
    plan_id: str
    applied_at: datetime
    ended_at: datetime | None  # a later revert or resize of the same VM; None while in force
    price_before_per_hour: float
    price_after_per_hour: float
    hours: float
    saving: float
    currency: str


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
    ts_ns = _utc_ns(hour_frame["ts"])
    order = vm_time_order(vm_codes, ts_ns)
    vm_codes = vm_codes[order]
    ts_ns = ts_ns[order]
    if isinstance(order, slice):  # a view of the input's stamps: the output gets its own
        ts_ns = ts_ns.copy()

    def column(name: str) -> np.ndarray:
        return numeric_column(hour_frame, name, order)

    hours = _billed_hours(_raw_column(hour_frame, "running_s", order), ts_ns, now, settings.stopped_vm_billing)
    type_codes, type_names, prices, source_codes = _price_hours(
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
        now_ns = _timestamp(now).value
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


def _utc_ns(values: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch (int64) of timestamps; naive values are taken as UTC."""
    return epoch_ns(values)


def _timestamp(value: datetime) -> pd.Timestamp:
    """A UTC ``Timestamp`` (naive datetimes are taken as UTC)."""
    ts = pd.Timestamp(value)
    return ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)


def _empty_costs() -> pd.DataFrame:
    data: dict[str, object] = {c: np.zeros(0) for c in COST_COLUMNS}
    data["vm"] = pd.Categorical([])
    data["ts"] = pd.DatetimeIndex([], tz=UTC)
    data["machine_type"] = pd.Categorical([])
    data["type_source"] = pd.Categorical([], categories=list(TYPE_SOURCES))
    return pd.DataFrame(data)


def _price_hours(
    vm_codes: np.ndarray,
    vm_names: list[str],
    vcpus: np.ndarray,
    memory_bytes: np.ndarray,
    vms: Sequence[VmRecord],
    catalogue: PriceCatalogue,
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Per row: machine type code, the type names, price per hour and source code (label, else shape)."""
    by_uuid = {vm.uuid: vm for vm in vms}
    type_names: list[str] = []
    type_index: dict[str, int] = {}

    def code_of(name: str) -> int:
        if name not in type_index:
            type_index[name] = len(type_names)
            type_names.append(name)
        return type_index[name]

    n_vms = len(vm_names)
    vm_type = np.full(n_vms, -1)
    vm_price = np.full(n_vms, np.nan)
    vm_vcpus = np.full(n_vms, np.nan)
    vm_mem = np.full(n_vms, np.nan)
    for i, uuid in enumerate(vm_names):
        vm = by_uuid.get(uuid)
        if vm is None:
            continue
        vm_vcpus[i], vm_mem[i] = vm.vcpus, vm.memory_bytes
        name = (vm.labels or {}).get(MACHINE_TYPE_LABEL, "").strip()
        found = catalogue.get(name) if name else None
        if found is not None:
            vm_type[i], vm_price[i] = code_of(found.name), found.price_per_hour

    # a VM keeps its shape for long runs of hours: price each run once and repeat it over the run's rows
    starts = _shape_runs(vm_codes, vcpus, memory_bytes)
    lengths = np.diff(np.append(starts, len(vm_codes)))
    run_vm = vm_codes[starts]
    run_type = vm_type[run_vm]
    run_price = vm_price[run_vm]
    run_source = np.where(run_type >= 0, _SOURCE_CODE["label"], _SOURCE_CODE["unknown"])
    rest = run_type < 0
    if rest.any():
        # a missing shape falls back to the inventory's; still missing (-1) cannot be priced
        rv = vcpus[starts[rest]].astype(np.float64)
        rm = memory_bytes[starts[rest]].astype(np.float64)
        v = np.nan_to_num(np.where(np.isnan(rv), vm_vcpus[run_vm[rest]], rv), nan=-1.0)
        m = np.nan_to_num(np.where(np.isnan(rm), vm_mem[run_vm[rest]], rm), nan=-1.0)
        run_shapes, shape_codes = np.unique(np.stack([v, m], axis=1), axis=0, return_inverse=True)
        shape_codes = shape_codes.ravel()
        u_type = np.full(len(run_shapes), -1)
        u_price = np.full(len(run_shapes), np.nan)
        for i, (sv, sm) in enumerate(run_shapes.tolist()):
            found = catalogue.cheapest_fitting(sv, sm) if sv > 0 and sm > 0 else None
            if found is not None:
                u_type[i], u_price[i] = code_of(found.name), found.price_per_hour
        run_type[rest] = u_type[shape_codes]
        run_price[rest] = u_price[shape_codes]
        run_source[rest] = np.where(u_type[shape_codes] >= 0, _SOURCE_CODE["inferred"], _SOURCE_CODE["unknown"])
    small = code_dtype(len(type_names))  # the categorical's own code width: no copy when it is built
    return (np.repeat(run_type.astype(small), lengths), type_names, np.repeat(run_price, lengths),
            np.repeat(run_source.astype(np.int8), lengths))


def _shape_runs(vm_codes: np.ndarray, vcpus: np.ndarray, memory_bytes: np.ndarray) -> np.ndarray:
    """Row indices where a run of one VM's rows with the same vCPUs and memory starts (NaN equals NaN)."""
    if len(vm_codes) == 0:
        return np.empty(0, dtype=np.int64)
    change = vm_codes[1:] != vm_codes[:-1]
    for values in (vcpus, memory_bytes):
        differs = values[1:] != values[:-1]
        both_nan = np.isnan(values[1:])
        both_nan &= np.isnan(values[:-1])
        differs &= ~both_nan
        change |= differs
    return np.concatenate([[0], np.flatnonzero(change) + 1])


TYPE_SOURCES: tuple[str, ...] = ("label", "inferred", "unknown")
_SOURCE_CODE = {name: i for i, name in enumerate(TYPE_SOURCES)}


def group_keys(vms: Sequence[VmRecord], group_by: str) -> dict[str, str]:
    """Map VM UUID to its group: ``vm`` (name), ``host``, or a label's value ("(none)" when absent)."""
    if group_by == "vm":
        return {vm.uuid: vm.name for vm in vms}
    if group_by == "host":
        return {vm.uuid: vm.host for vm in vms}
    return {vm.uuid: label_value(vm.labels, group_by) for vm in vms}


def summarise_costs(
    cost_frame: pd.DataFrame,
    vms: Sequence[VmRecord],
    *,
    group_by: str = "host",
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    currency: str = "EUR",
) -> CostSummary:
    """Total a ``fleet_costs`` frame per group and per VM over ``[start, end)``, plus month figures.

    The window totals use rows with ``start <= ts < end`` (default: the whole frame). Month to date is the
    cost of rows from the first of ``now``'s month (UTC) up to ``now``; the forecast adds the run-rate of
    the trailing 7 days (or the shorter span the frame holds) times the hours left in the month. For
    complete figures the frame must reach back to the month start and 7 days. ``group_by`` is ``vm``,
    ``host``, ``machine_type`` or any label key. Naive datetimes are taken as UTC.
    """
    now_ts = _timestamp(now)
    end_dt = _timestamp(end).to_pydatetime() if end is not None else now_ts.to_pydatetime()
    start = _timestamp(start).to_pydatetime() if start is not None else None
    ts = cost_frame["ts"]
    in_window = ts < pd.Timestamp(end_dt)
    if start is not None:
        in_window &= ts >= pd.Timestamp(start)
    window = cost_frame[in_window]

    per_vm = _per_vm(window, vms, group_by, currency)
    groups = _groups(per_vm)
    total = float(sum(v.cost for v in per_vm))

    month = month_figures(epoch_ns(ts), cost_frame["cost"].to_numpy(dtype=float), now=now_ts, currency=currency)
    unpriced = tuple(sorted({v.vm_uuid for v in per_vm if v.machine_type is None}))
    return CostSummary(
        currency=currency,
        start=start,
        end=end_dt,
        group_by=group_by,
        total=total,
        compute_total=float(sum(v.compute_cost for v in per_vm)),
        storage_total=float(sum(v.storage_cost for v in per_vm)),
        groups=groups,
        per_vm=per_vm,
        month=month,
        unpriced_vms=unpriced,
    )


def month_figures(ts_ns: np.ndarray, cost: np.ndarray, *, now: datetime, currency: str) -> MonthFigures:
    """Month figures of priced hours: ``ts_ns`` (epoch ns, UTC) and ``cost`` per row, in the frame's row order.

    Month to date sums rows from the first of ``now``'s month up to ``now``; the forecast adds the run-rate of
    the trailing ``RUN_RATE_DAYS`` (or the shorter span the rows hold) times the hours left in the month.
    """
    now_ts = _timestamp(now)
    month_start = now_ts.replace(day=1, hour=0, minute=0, second=0, microsecond=0, nanosecond=0)
    next_month = month_start + pd.DateOffset(months=1)
    before_now = ts_ns < now_ts.value
    mtd = float(pd.Series(cost[(ts_ns >= month_start.value) & before_now]).sum())
    rate_start = now_ts - pd.Timedelta(days=RUN_RATE_DAYS)
    if len(ts_ns):
        rate_start = max(rate_start, pd.Timestamp(int(ts_ns.min()), tz="UTC"))
    rate_hours = max((now_ts - rate_start) / _HOUR, 0.0)
    rate_cost = float(pd.Series(cost[(ts_ns >= rate_start.value) & before_now]).sum())
    rate = rate_cost / rate_hours if rate_hours > 0 else 0.0
    remaining = max((next_month - now_ts) / _HOUR, 0.0)
    span = "last 7 days" if rate_hours >= RUN_RATE_DAYS * 24 - 1e-9 else f"last {rate_hours:.1f} h (all data)"
    basis = (
        f"month to date {mtd:.2f} {currency} + run-rate of the {span} "
        f"{rate:.4f} {currency}/h x {remaining:.1f} h left in the month"
    )
    return MonthFigures(month_start.to_pydatetime(), mtd, rate, float(rate_hours), float(remaining),
                        mtd + rate * remaining, basis)


def _per_vm(window: pd.DataFrame, vms: Sequence[VmRecord], group_by: str, currency: str) -> tuple[VmCost, ...]:
    if window.empty:
        return ()
    by_uuid = {vm.uuid: vm for vm in vms}
    sums = window.groupby("vm", sort=True).agg(
        running_hours=("running_hours", "sum"),
        present_hours=("present_hours", "sum"),
        compute_cost=("compute_cost", "sum"),
        storage_cost=("storage_cost", "sum"),
        cost=("cost", "sum"),
    )
    last_idx = window.groupby("vm", sort=True)["ts"].idxmax()
    latest = window.loc[last_idx.to_numpy(), ["machine_type", "type_source", "price_per_hour"]]
    keys = group_keys(vms, group_by) if group_by != "machine_type" else {}
    out: list[VmCost] = []
    for uuid_, mtype_, source, price_, running, billed, compute, storage_c, cost in zip(
        sums.index, latest["machine_type"], latest["type_source"], latest["price_per_hour"],
        sums["running_hours"], sums["present_hours"], sums["compute_cost"], sums["storage_cost"], sums["cost"],
        strict=True,
    ):
        uuid = str(uuid_)
        vm = by_uuid.get(uuid)
        mtype = mtype_ if isinstance(mtype_, str) else None
        price = float(price_) if np.isfinite(price_) else None
        if group_by == "machine_type":
            group = mtype or "(unknown)"
        else:
            group = keys.get(uuid, "(unknown VM)")
        out.append(VmCost(
            vm_uuid=uuid,
            name=vm.name if vm else uuid,
            host=vm.host if vm else "",
            group=group,
            machine_type=mtype,
            type_source=str(source),
            price_per_hour=price,
            running_hours=float(running),
            billed_hours=float(billed),
            compute_cost=float(compute),
            storage_cost=float(storage_c),
            cost=float(cost),
            currency=currency,
        ))
    return tuple(sorted(out, key=lambda v: (-v.cost, v.name)))


def _groups(per_vm: Sequence[VmCost]) -> tuple[GroupCost, ...]:
    acc: dict[str, list[VmCost]] = {}
    for v in per_vm:
        acc.setdefault(v.group, []).append(v)
    total = sum(v.cost for v in per_vm)
    groups = [
        GroupCost(
            key=key,
            vms=len(items),
            running_hours=sum(v.running_hours for v in items),
            compute_cost=sum(v.compute_cost for v in items),
            storage_cost=sum(v.storage_cost for v in items),
            cost=sum(v.cost for v in items),
            share=(sum(v.cost for v in items) / total) if total > 0 else 0.0,
        )
        for key, items in acc.items()
    ]
    return tuple(sorted(groups, key=lambda g: (-g.cost, g.key)))


def realised_savings(
    entries: Sequence[AuditEntry],
    now: datetime,
    *,
    currency: str = "",
    hour_frame: pd.DataFrame | None = None,
) -> list[RealisedSaving]:
    """Savings of applied resizes and stops: (price before - after) per hour x the hours they were in force.

    An "applied" entry is in force until the same VM's next "applied" or "reverted" entry, or ``now``.
    With ``hour_frame`` (hourly rollups: ``vm``, ``ts``, ``running_s``) the hours are the running hours the
    collector saw in that span (the apply's own hour pro rata); a VM that was off or unobserved saved
    nothing then; a stop counts the hours the VM stayed off instead (until it is seen running again).
    Without it they are wall-clock hours (an upper bound). Entries without both prices are skipped.
    """
    running = _running_by_vm(hour_frame) if hour_frame is not None else None
    ordered = sorted(entries, key=lambda e: (e.ts, e.id or 0))
    open_by_vm: dict[str, AuditEntry] = {}
    closed: list[tuple[AuditEntry, datetime | None]] = []
    for entry in ordered:
        if entry.result not in ("applied", "reverted"):
            continue
        previous = open_by_vm.pop(entry.vm_uuid, None)
        if previous is not None:
            closed.append((previous, entry.ts))
        if entry.result == "applied":
            open_by_vm[entry.vm_uuid] = entry
    closed.extend((entry, None) for entry in open_by_vm.values())
    out: list[RealisedSaving] = []
    for entry, ended in closed:
        if entry.price_before_per_hour is None or entry.price_after_per_hour is None:
            continue
        stop = ended or now
        wall_h = max((stop - entry.ts) / timedelta(hours=1), 0.0)
        if running is None:
            hours = wall_h
        elif entry.action == STOP_ACTION:  # a stop saves the hours the VM stayed off
            hours = max(wall_h - _running_hours(running.get(entry.vm_uuid), entry.ts, stop), 0.0)
        else:
            hours = _running_hours(running.get(entry.vm_uuid), entry.ts, stop)
        delta = entry.price_before_per_hour - entry.price_after_per_hour
        out.append(RealisedSaving(
            vm_uuid=entry.vm_uuid,
            vm_name=entry.vm_name,
            plan_id=entry.plan_id,
            applied_at=entry.ts,
            ended_at=ended,
            price_before_per_hour=entry.price_before_per_hour,
            price_after_per_hour=entry.price_after_per_hour,
            hours=hours,
            saving=delta * hours,
            currency=entry.currency or currency,
        ))
    return sorted(out, key=lambda s: (s.applied_at, s.vm_name))



def _running_by_vm(hour_frame: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per VM UUID: (hour start ns, running hours 0..1) from an hourly rollup frame."""
    if hour_frame.empty:
        return {}
    ts_ns = _utc_ns(hour_frame["ts"])
    run_h = np.clip(np.nan_to_num(pd.to_numeric(hour_frame["running_s"], errors="coerce").to_numpy(
        dtype=float, na_value=np.nan)) / 3600.0, 0.0, 1.0)
    vm = hour_frame["vm"].astype(str).to_numpy()
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for uuid in np.unique(vm):
        mask = vm == uuid
        out[str(uuid)] = (ts_ns[mask], run_h[mask])
    return out


def _running_hours(rows: tuple[np.ndarray, np.ndarray] | None, start: datetime, stop: datetime) -> float:
    """Running hours in ``[start, stop)``; an hour cut by the span counts its running time pro rata."""
    if rows is None or stop <= start:
        return 0.0
    ts_ns, run_h = rows
    hour_ns = 3_600_000_000_000
    lo = np.maximum(ts_ns, _timestamp(start).value)
    hi = np.minimum(ts_ns + hour_ns, _timestamp(stop).value)
    overlap = np.clip((hi - lo) / hour_ns, 0.0, 1.0)
    return float(np.sum(run_h * overlap))


def realised_savings_for_store(store: TimeSeriesStore, now: datetime, *, currency: str = "") -> list[RealisedSaving]:
    """:func:`realised_savings` over the store's audit log, counting the running hours the store saw."""
    entries = store.audit()
    applied = [e.ts for e in entries if e.result == "applied"]
    if not applied:
        return []
    hours = store.frame(min(applied) - timedelta(hours=1), now, resolution="hour")
    return realised_savings(entries, now, currency=currency, hour_frame=hours)


def billed_per_hour(compute_per_hour: float, storage_per_hour: float, *, running: bool, rule: str) -> float:
    """What a VM costs per hour now: compute while it runs (or when stopped under ``full``), disks while it
    runs or when stopped under ``full``/``storage-only``. The one rule every "cost per hour now" figure uses
    (the VMs table, the run-rate, ``rightsizer_vm_hourly_cost``)."""
    if running or rule == "full":
        return compute_per_hour + storage_per_hour
    return storage_per_hour if rule == "storage-only" else 0.0
