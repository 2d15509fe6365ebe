"""``rightsizer costs``: pay-as-you-go cost per VM and group, month to date, forecast, realised savings."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.units import hour_floor
from rightsizer.commands.sourceflags import add_source_flags

if TYPE_CHECKING:
    from rightsizer.context import Context

DESCRIPTION = """\
Price every VM-hour in the store at the machine type's pay-as-you-go price and sum it per VM and per
group. A VM's machine type is its 'machine_type' label when the catalogue knows it ("label"), else the
cheapest generally available type covering its vCPUs and memory ("inferred"). Storage is disk capacity
per GB-hour plus one performance-class fee per VM.

Stopped VMs: the provider does not publish whether a stopped VM is billed. Choose the rule with
[costs] stopped_vm_billing or --stopped-vm-billing: none (a stopped VM costs nothing), storage-only
(its disks; the default) or full (machine type and disks).

Month to date counts from the first of --until's month (UTC). The month-end forecast adds the
run-rate of the last 7 days (or all data, when there is less) times the hours left in the month.
Realised savings come from applied resizes in the audit log: (price before - after) x the hours the
VM was seen running while the resize was in force (not every hour since).
"""


def add_parser(sub: argparse._SubParsersAction[Any], parent: argparse.ArgumentParser) -> None:
    """Register ``costs``."""
    p = sub.add_parser(
        "costs",
        parents=[parent],
        help="cost per VM and group, month to date and month-end forecast",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--group-by", default="host", metavar="KEY",
                   help="host, machine_type, vm, or any label key such as team or env (default: host)")
    p.add_argument("--since", default=None, metavar="WHEN",
                   help="window start: ISO date/time (UTC if no zone) or a duration before --until "
                        "such as 7d, 24h (default: [costs] window_days, 14d -- the dashboard's and the "
                        "report's default window too); rounded down to the hour")
    p.add_argument("--until", default=None, metavar="WHEN",
                   help="window end and as-of time for month to date and forecast (default: now, or the "
                        "newest stored data when that is older, e.g. imported traces)")
    p.add_argument("--stopped-vm-billing", choices=("none", "full", "storage-only"), default=None,
                   help="what a stopped VM costs; overrides [costs] stopped_vm_billing (not published "
                        "by the provider)")
    add_source_flags(p)
    p.set_defaults(func=run, settings_overrides=_overrides)


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    if args.stopped_vm_billing:
        return {"costs": {"stopped_vm_billing": args.stopped_vm_billing}}
    return {}


def window_bounds(since: str, until: str | None, now: datetime) -> tuple[datetime, datetime]:
    """Parse --since/--until into a UTC window, start rounded down to the hour. Raises InputError."""
    from analytics.fleet import parse_instant
    from collector.errors import InputError

    end = parse_instant(until, now=now, flag="--until") if until else now
    start = parse_instant(since, now=end, flag="--since")
    start = hour_floor(start)
    if start >= end:
        raise InputError(
            f"--since {since!r} ({start.isoformat()}) is not before --until ({end.isoformat()}); "
            "pick an earlier --since"
        )
    return start, end


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Compute and print the cost report; returns the exit code."""
    from analytics.catalogue import load_storage_prices
    from analytics.cost_summary import BUILTIN_GROUPS, summarise_costs
    from analytics.costs import COST_INPUT_COLUMNS, fleet_costs
    from analytics.fleet import data_as_of
    from analytics.realised import realised_savings_for_store
    from collector.errors import InputError

    store = ctx.open_source()
    store.refresh_rollups()
    wall = datetime.now(UTC)
    span = store.time_range()
    now = wall if args.until else data_as_of(span[1] if span else None, wall)
    anchored = "" if now == wall else (
        f"the newest data is from {now:%Y-%m-%d %H:%M} UTC; reporting as of then (pass --until to choose)")
    start, end = window_bounds(args.since or f"{ctx.settings.costs.window_days}d", args.until, now)
    vms = store.vms()
    group_by = args.group_by.strip()
    if group_by not in BUILTIN_GROUPS:
        keys = sorted({k for vm in vms for k in vm.labels})
        if vms and group_by not in keys:
            raise InputError(
                f"--group-by {group_by!r} is not host, machine_type, vm or a label any VM has; "
                f"labels in the store: {', '.join(keys) or '(none)'}"
            )
    catalogue = ctx.catalogue()
    if anchored:
        print(f"costs: {anchored}", file=sys.stderr)
    cost_settings = ctx.settings.costs
    storage = load_storage_prices()
    notes: list[str] = []
    if cost_settings.include_storage and storage.currency != catalogue.currency:
        cost_settings = cost_settings.model_copy(update={"include_storage": False})
        notes.append(f"storage not priced: storage prices are in {storage.currency}, "
                     f"the catalogue in {catalogue.currency}")
    month_start = end.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    fetch_start = min(start, month_start, end - timedelta(days=7))
    hours = store.frame(fetch_start, end, resolution="hour", columns=COST_INPUT_COLUMNS)
    cost_frame = fleet_costs(hours, vms, catalogue, storage, cost_settings, now=end)
    summary = summarise_costs(
        cost_frame, vms, group_by=group_by, now=end, start=start, end=end, currency=catalogue.currency
    )
    savings = realised_savings_for_store(store, end, currency=catalogue.currency)
    if summary.unpriced_vms:
        notes.append(f"{len(summary.unpriced_vms)} VM(s) fit no catalogue type and are not priced")
    if not vms:
        notes.append("the store holds no VMs yet; run 'rightsizer collect' or 'rightsizer import'")
    _emit(ctx, args.output, summary, savings, cost_settings.stopped_vm_billing, notes)
    return 0


def _emit(ctx: Context, fmt: str, summary: Any, savings: list[Any], rule: str, notes: list[str]) -> None:
    group_col = summary.group_by if summary.group_by not in ("vm", "host", "machine_type") else None
    vm_rows: list[dict[str, Any]] = []
    for v in summary.per_vm:
        row: dict[str, Any] = {"vm": v.name, "uuid": v.vm_uuid, "host": v.host}
        if group_col:
            row[group_col] = v.group
        row.update({
            "machine_type": v.machine_type,
            "chosen_by": v.type_source,
            "price_per_hour": v.price_per_hour,
            "running_hours": v.running_hours,
            "compute_cost": v.compute_cost,
            "storage_cost": v.storage_cost,
            "cost": v.cost,
            "currency": v.currency,
        })
        vm_rows.append(row)
    group_rows = [
        {summary.group_by: g.key, "vms": g.vms, "running_hours": g.running_hours, "cost": g.cost,
         "share_pct": 100 * g.share, "currency": summary.currency}
        for g in summary.groups
    ]
    saving_rows = [
        {"vm": s.vm_name, "applied_at": s.applied_at, "ended_at": s.ended_at,
         "price_before_per_hour": s.price_before_per_hour, "price_after_per_hour": s.price_after_per_hour,
         "hours": s.hours, "saving": s.saving, "currency": s.currency}
        for s in savings
    ]
    totals: dict[str, Any] = {
        "window_start": summary.start,
        "window_end": summary.end,
        "currency": summary.currency,
        "stopped_vm_billing": rule,
        "total": summary.total,
        "compute_total": summary.compute_total,
        "storage_total": summary.storage_total,
        "month_to_date": summary.month.month_to_date,
        "forecast_month_end": summary.month.forecast_month_end,
        "forecast_basis": summary.month.forecast_basis,
        "realised_savings_total": sum(s.saving for s in savings),
    }
    if fmt == "json":
        ctx.out.emit({**totals, "group_by": summary.group_by, "groups": group_rows, "vms": vm_rows,
                      "realised_savings": saving_rows, "unpriced_vms": list(summary.unpriced_vms),
                      "notes": notes}, "json")
        return
    if fmt == "csv":
        columns = list(vm_rows[0]) if vm_rows else _VM_COLUMNS
        ctx.out.emit([_text(r) for r in vm_rows], "csv", columns=columns)
        return
    stream = ctx.out.stream
    if vm_rows:
        ctx.out.emit([_table_row(r) for r in vm_rows], "table")
        stream.write(f"money in {summary.currency}, 2 decimals; prices per hour to 5 (--output csv or json for "
                     "full precision)\n")
    else:
        stream.write("No VM-hours in the window.\n")
    if group_rows:
        stream.write(f"\nBy {summary.group_by}:\n")
        ctx.out.emit([_table_row(r) for r in group_rows], "table")
    if saving_rows:
        stream.write("\nRealised savings of applied resizes (running hours the collector saw while each was in "
                     "force):\n")
        ctx.out.emit([_text(r) for r in saving_rows], "table")
    stream.write("\n")
    money = ("total", "compute_total", "storage_total", "month_to_date", "forecast_month_end", "realised_savings_total")
    ctx.out.emit([{"figure": k, "value": f"{v:,.2f}" if k in money and isinstance(v, int | float) else _fmt(k, v)}
                  for k, v in totals.items()], "table")
    if summary.start is not None:
        stream.write(f"cost window: {summary.start:%Y-%m-%d %H:%M} - {summary.end:%Y-%m-%d %H:%M} UTC\n")
    for note in notes:
        stream.write(f"note: {note}\n")


def _fmt(key: str, value: Any) -> Any:
    """Text for a table or CSV cell: prices to 5 decimals, money to 4, hours and shares to 1."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if key.startswith("price"):
            return f"{value:.5f}"
        if key.endswith("hours") or key == "hours" or key.endswith("pct"):
            return f"{value:.1f}"
        return f"{value:.4f}"  # one precision per column, whatever the size
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return value


#: Table headings of the costs columns (the JSON and CSV keep the long names).
_SHORT = {"machine_type": "type", "chosen_by": "chosen by", "price_per_hour": "price/h", "running_hours": "hours",
          "compute_cost": "compute", "storage_cost": "storage", "share_pct": "share %"}


def _table_row(row: dict[str, Any]) -> dict[str, Any]:
    """A costs row for a terminal: short headings, money to 2 decimals, no currency or UUID column."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k in ("uuid", "currency"):
            continue
        if isinstance(v, float) and (k == "cost" or k.endswith("_cost") or k == "saving"):
            out[_SHORT.get(k, k)] = f"{v:,.2f}"
        else:
            out[_SHORT.get(k, k)] = _fmt(k, v)
    return out


def _text(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _fmt(k, v) for k, v in row.items()}


_VM_COLUMNS = ["vm", "uuid", "host", "machine_type", "chosen_by", "price_per_hour", "running_hours",
               "compute_cost", "storage_cost", "cost", "currency"]
