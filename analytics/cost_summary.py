"""A fleet's costs totalled over a window: per VM, per group (label value, host or machine type), with the
month-to-date figures and the month-end forecast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from analytics.fleet import label_value
from analytics.forecast import MonthFigures, month_figures
from analytics.frames import epoch_ns, utc_timestamp
from collector.model import VmRecord

#: Field metadata key: a nested value's fields are written in place of the field (see reports.to_plain).
FLATTEN = "flatten"
#: Group keys that are not labels.
BUILTIN_GROUPS = ("vm", "host", "machine_type")


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
    now_ts = utc_timestamp(now)
    end_dt = utc_timestamp(end).to_pydatetime() if end is not None else now_ts.to_pydatetime()
    start = utc_timestamp(start).to_pydatetime() if start is not None else None
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
