"""``rightsizer recommend``: right-size every VM in the store; the JSON output doubles as a resize plan."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from rightsizer.commands.sourceflags import add_source_flags
from rightsizer.commands.strategyflags import add_settings_flags, settings_from_args

if TYPE_CHECKING:
    from analytics.findings.finding import VmFinding
    from rightsizer.context import Context

DESCRIPTION = """\
Judge every VM over the last --lookback (7d, 14d or 30d; default [rightsizing] lookback_days, 14) of
hourly rollups with a strategy (default: ours, 'rightsizer'; anchors: aws, krr, vpa) and print one
finding per VM, with the current and target machine type, prices per hour, savings per 720-hour month
(EUR and %) and the risk of the move in words (very-low .. very-high) with the facts that set it:

  over-provisioned / under-provisioned  resize to the target type (action: resize)
  below-threshold     a smaller type fits, but the saving is under the threshold (no action)
  optimized           the current type is the cheapest that covers the need
  idle                stopping it saves its whole compute price (action: stop); the downsize is the
                      fallback option
  stopped             shut off for [rightsizing] stopped_after (7d) or longer; priced as what it still
                      costs under [costs] stopped_vm_billing; options: snapshot then delete, delete
                      (deleting is a person's act: rightsizer never deletes)
  resize-regret       an applied resize overran its new size in the lookback after it; proposes the
                      next size up or the revert (action: resize)
  contention          the vCPUs wait for a host CPU ([signals] contention_share of their time or more):
                      starved by the host it names, not undersized; no CPU upsize (move it or relieve the host)
  insufficient-data   too little history in the lookback for any advice

Storage advice (JSON 'storage', table storage_class/storage_savings), beside the finding, for every VM with
a known disk capacity: the cheapest STACKIT performance class whose published IOPS and MB/s limits cover the
disks' P99 load, and the capacity to keep (bytes used + [signals] storage_headroom, at least
storage_min_bytes; used = the guest's filesystems through the QEMU guest agent when it answered, else the
image allocation, else unknown and no shrink), priced per month against [costs] storage_class.

"need" is the strategy's statistic plus headroom, named in need.cpu_statistic / need.memory_statistic
(the same name the dashboard and the report show). The current type is the VM's 'machine_type' label when the
catalogue knows it, else the cheapest eligible type covering its allocation (type_source).

Shared rules: no recommendation with < 30 h of data or < 3 days of span; unknown memory use is never
downsized; a downsize must save max(10 %, --min-monthly-savings); a growing trend blocks a downsize;
hours with guest swap or major-fault bursts count as memory fully used (memory pressure blocks a downsize).
VMs labelled rightsizer_exclude=true, or matched by an excluding policy, are shown but never resized.

Each VM also gets its workload pattern (office-hours, nightly-batch, steady, spiky, idle, unknown) from
its weekday x hour profile, and office-hours/nightly-batch VMs an on/off schedule: the weekly window that
covers their demand with a margin ([schedules] timezone, default UTC), its saving under hourly billing
(hours off x compute price after any resize; disks are billed anyway) and the demand it would have missed.
env=prod VMs get one only with a 'schedule' label or a policy with schedules = true.

--output json prints one object per VM (uuid, name, uri, current and target vcpus/memory/type, need,
action, prices, monthly_savings, savings_pct, risk, risk_reasons, projected, reasons, options, pattern,
schedule, storage). With --actionable only the VMs with an action (resize or stop) are printed: exactly the
steps of 'rightsizer apply --from-findings'; 'rightsizer apply FILE.json' takes either list, applies
resizes and applies stops only with --allow-stop. Strategy settings below override the strategy's
defaults; each applies only to strategies that have it.
"""


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    from analytics.rightsizing.base import Finding as FINDINGS
    from analytics.rightsizing.settings import STRATEGY_NAMES

    p = sub.add_parser(
        "recommend", parents=[parent], help="right-size every VM in the store (findings, resize plan)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--strategy", choices=STRATEGY_NAMES, help="strategy (default: config [rightsizing] strategy)")
    p.add_argument("--profile", choices=("conservative", "balanced", "aggressive"), default=None,
                   help="our strategy's profile (default: config [rightsizing] profile, balanced)")
    p.add_argument("--lookback", metavar="DURATION",
                   help="history to judge, e.g. 7d, 14d, 30d (default: config [rightsizing] lookback_days, 14)")
    p.add_argument("--lookback-days", type=float, metavar="DAYS", help=argparse.SUPPRESS)
    p.add_argument("--actionable", action="store_true",
                   help="only VMs with an action (resize, stop): the plan 'apply --from-findings' builds")
    p.add_argument("--min-monthly-savings", type=float, metavar="AMOUNT",
                   help="smallest monthly saving worth a downsize (default: config, 1.0)")
    p.add_argument("--now", metavar="ISO|latest|wall", default="latest",
                   help="analysis time: 'latest' = newest data in the store (default), 'wall' = the clock, "
                        "or an ISO-8601 UTC time")
    p.add_argument("--vm", action="append", metavar="NAME_OR_UUID", help="only these VMs (repeatable)")
    p.add_argument("--wide", action="store_true",
                   help="table: every column of each finding (one block per VM) instead of one line per VM")
    p.add_argument("--explain", metavar="NAME_OR_UUID",
                   help="table: one VM's finding in full (reasons, risk, options, evidence)")
    p.add_argument("--finding", action="append", metavar="FINDING",
                   choices=tuple(f.value for f in FINDINGS),
                   help="only VMs with this finding (repeatable)")
    p.add_argument("--policies", metavar="FILE",
                   help="TOML file of [[policy]] overrides (vm or labels match); default: [rightsizing] policies_file")
    p.add_argument("--timezone", metavar="ZONE",
                   help="IANA time zone of weekly profiles and schedule windows (default: [schedules] timezone, UTC)")
    add_settings_flags(p)
    add_source_flags(p)
    p.set_defaults(func=run)


def _parse_now(text: str, ctx: Context) -> Any:
    from datetime import UTC, datetime

    from collector.errors import InputError

    if text == "wall":
        return datetime.now(UTC)
    if text == "latest":
        source = ctx.open_source()
        newest = source.time_range()
        if newest is None:
            if ctx.is_promql:
                raise InputError(f"{source.path} holds no rightsizer series in the last "
                                 f"{ctx.settings.source.history_days:g} days; check the scrape targets and "
                                 "[source] matchers")
            raise InputError(f"Database {str(ctx.db_path)!r} holds no samples; run 'rightsizer collect' or "
                             "'rightsizer import' first")
        return newest[1]
    from core.instants import parse_iso_instant

    try:
        return parse_iso_instant(text, "--now")
    except InputError as exc:
        raise InputError(f"{exc} (or 'latest', 'wall')") from None


#: ``--wide``: every column of a finding's row (too wide for a terminal: one block per VM).
WIDE_COLUMNS = (
    "name", "finding", "action", "current_type", "type_source", "vcpus", "memory_gib", "need_vcpus",
    "need_memory_gib", "target_type", "price_before_per_hour", "price_after_per_hour", "monthly_savings",
    "savings_pct", "risk", "pattern", "schedule", "schedule_savings", "storage_class", "storage_savings", "reason",
)
#: The default table: one line per VM within 120 columns, biggest saving first.
TABLE_COLUMNS = ("name", "finding", "change", "saving", "risk", "schedule")


def short_row(f: VmFinding) -> dict[str, Any]:
    """A finding in one terminal line: the change it proposes, its saving by the headline's rule, its risk."""
    from analytics.findings.headline import headline_saving, saving_kind

    kind = saving_kind(f)
    if f.action == "stop":
        change = f"stop ({f.current_type or '?'})"
    elif f.changes_type:
        change = f"{f.current_type} -> {f.target_type}"
    else:
        change = f.current_type or "(unpriced)"
    saving = headline_saving(f) if kind != "upsize" else f.monthly_savings
    return {
        "name": f.name, "finding": f.finding.value + (" (excluded)" if f.excluded else "")
        + (f" ({f.dismissed.state})" if f.dismissed is not None else ""), "change": change,
        "saving": f"{saving:,.2f} {f.currency}/mo" if f.currency else "-", "risk": f.risk.value,
        "schedule": f"on {f.schedule.on} {f.schedule.timezone}" if f.schedule is not None else "",
    }


def explain(f: VmFinding) -> list[dict[str, Any]]:
    """One VM's finding in full: every field of its row, its headroom in words (as the dashboard's VM page says
    it), its reasons, risk reasons and options."""
    rows = [{"field": k, "value": v} for k, v in f.row().items() if v not in (None, "")]
    if f.need_headroom:
        rows.append({"field": "headroom", "value": f.need_headroom})
    rows += [{"field": f"why: {k}", "value": v} for k, v in f.reasons.items()]
    rows += [{"field": "risk because", "value": r} for r in f.risk_reasons]
    rows += [{"field": f"option {i + 1}", "value": ", ".join(f"{k}={v}" for k, v in o.items())}
             for i, o in enumerate(f.options)]
    return rows


def schedule_settings_from_args(args: argparse.Namespace, ctx: Context) -> Any:
    """``[schedules]`` with ``--timezone`` applied. Raises InputError naming an unknown zone."""
    from collector.errors import InputError
    from core.settings import ScheduleSettings

    base: ScheduleSettings = ctx.settings.schedules
    zone = getattr(args, "timezone", None)
    if not zone:
        return base
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(f"--timezone {zone!r} is not a known time zone; use an IANA name such as "
                         "'Europe/Berlin' or 'UTC'") from exc
    return base.model_copy(update={"timezone": zone})


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from analytics.analysis import AnalysisOptions, analyse_fleet
    from analytics.findings.headline import headline_of
    from analytics.findings.risk import legend_text
    from analytics.rightsizing.settings import load_policies

    rs = ctx.settings.rightsizing
    strategy = args.strategy or rs.strategy
    lookback_days = lookback_days_arg(args.lookback, args.lookback_days, float(rs.lookback_days))
    base = {
        "lookback_days": lookback_days,
        "min_monthly_savings": (args.min_monthly_savings if args.min_monthly_savings is not None
                                else rs.min_monthly_savings),
    }
    if strategy == "rightsizer":
        from rightsizer.commands.strategyflags import profile_base

        base = {**profile_base(args, ctx), **base}
    catalogue = ctx.catalogue()
    options = AnalysisOptions.from_settings(
        ctx.settings, catalogue, strategy=strategy, lookback_days=lookback_days, now=_parse_now(args.now, ctx),
        policies=load_policies(Path(args.policies)) if args.policies else None,
        strategy_settings=settings_from_args(args, strategy, base),
        schedules=schedule_settings_from_args(args, ctx), min_monthly_savings=base["min_monthly_savings"])
    store = ctx.open_source()
    if args.vm or args.explain:
        check_vms([*(args.vm or ()), *([args.explain] if args.explain else [])], store.vms())
    analysis = analyse_fleet(store, catalogue, options)
    findings = list(analysis.findings)
    if args.vm:
        wanted = set(args.vm)
        findings = [f for f in findings if f.name in wanted or f.uuid in wanted]
    if args.finding:
        findings = [f for f in findings if f.finding.value in args.finding]
    if args.actionable:
        findings = [f for f in findings if f.is_actionable]
    if args.output == "json":
        ctx.out.emit([f.plan_entry() for f in findings])
        return 0
    if args.output == "csv":
        from analytics.findings.finding import FINDING_CSV_COLUMNS

        ctx.out.emit([f.csv_row() for f in findings], columns=list(FINDING_CSV_COLUMNS))
        return 0
    if args.explain:
        chosen = next(f for f in analysis.findings if args.explain in (f.name, f.uuid))
        ctx.out.emit(explain(chosen), columns=("field", "value"))
        return 0
    if args.wide:
        ctx.out.emit([f.row() for f in findings], columns=WIDE_COLUMNS)
    else:
        from analytics.findings.headline import headline_saving

        ordered = sorted(findings, key=lambda f: (-headline_saving(f), f.monthly_savings, f.name))
        ctx.out.emit([short_row(f) for f in ordered], columns=TABLE_COLUMNS)
    # the headline of the whole fleet when nothing is filtered, else of the rows shown
    shown = analysis.headline if len(findings) == len(analysis.findings) else headline_of(findings)
    for line in shown.lines():
        print(line, file=sys.stderr)
    print(f"strategy {options.strategy}, lookback {options.effective_lookback_days:g} d, analysis time "
          f"{analysis.now:%Y-%m-%d %H:%M} UTC", file=sys.stderr)
    import textwrap

    print("\n".join(textwrap.wrap(f"risk legend: {legend_text()}", 120, subsequent_indent="  ")), file=sys.stderr)
    return 0


def lookback_days_arg(text: str | None, days: float | None, default: float) -> float:
    """Days of the --lookback duration (or the legacy --lookback-days). Raises InputError naming the value."""
    from collector.errors import InputError

    if text is None:
        if days is not None and days <= 0:
            raise InputError(f"--lookback-days {days!r} must be > 0; e.g. 14")
        return default if days is None else float(days)
    from core.durations import parse_duration

    try:
        value = parse_duration(text).total_seconds() / 86400.0
    except InputError:
        value = 0.0
    if value < 1.0 or value > 400.0:
        raise InputError(f"--lookback {text!r} is not a duration from 1d to 400d; use e.g. 7d, 14d or 30d")
    return value


def check_vms(wanted: list[str], vms: list[Any]) -> None:
    """Raise InputError naming the first --vm value that matches no VM name or UUID in the store."""
    from collector.errors import InputError

    known = {vm.name for vm in vms} | {vm.uuid for vm in vms}
    for value in wanted:
        if value not in known:
            names = sorted(vm.name for vm in vms)
            hint = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise InputError(f"--vm {value!r} matches no VM name or UUID in the store; known VMs: "
                             f"{hint or '(none)'}")
