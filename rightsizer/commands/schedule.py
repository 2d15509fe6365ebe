"""``rightsizer schedule``: the dry run of on/off schedules -- every start and stop of the next days."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rightsizer.context import Context

DESCRIPTION = """\
List every start and stop the service would make over the next --days (default 7) for the VMs under a
schedule: VMs labelled schedule=WINDOW (e.g. 'Mon-Fri 07:00-19:00', several joined by ';', zone from the
text or [schedules] timezone) or schedule=auto (the window 'rightsizer recommend' proposes). --window
previews a window for the --vm VMs without labelling them. Nothing is started or stopped here; 'serve'
applies schedules when [actions] schedules = true: stops are graceful ACPI shutdowns, skipped while the
VM is busy (CPU above [idle] cpu_vcpus_below in the last [schedules] busy_lookback_minutes) and never
made on excluded VMs; every start and stop goes into the audit log.
"""


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("schedule", parents=[parent], help="dry run of on/off schedules (next 7 days of starts/stops)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=float, default=7.0, metavar="DAYS", help="how far ahead to list (default 7)")
    p.add_argument("--vm", action="append", metavar="NAME_OR_UUID", help="only these VMs (repeatable)")
    p.add_argument("--window", metavar="SCHEDULE",
                   help="preview this schedule for the --vm VMs, e.g. 'Mon-Fri 07:00-19:00 Europe/Berlin'")
    p.add_argument("--timezone", metavar="ZONE", help="zone of windows that name none (default: [schedules] timezone)")
    p.add_argument("--from", dest="start", metavar="ISO", help="list from this time (default: now)")
    p.set_defaults(func=run)


def _start(text: str | None) -> Any:
    from datetime import UTC, datetime

    from core.instants import parse_iso_instant

    if not text:
        return datetime.now(UTC)
    return parse_iso_instant(text, "--from")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from analytics.analysis import AnalysisOptions, analyse_fleet
    from analytics.schedules import parse_schedule
    from collector.errors import InputError
    from rightsizer.commands.recommend import schedule_settings_from_args
    from rightsizer.schedules import dry_run, resolve_scheduled

    if not 0 < args.days <= 62:
        raise InputError(f"--days {args.days!r} must be between 0 and 62")
    settings = ctx.settings.model_copy(update={"schedules": schedule_settings_from_args(args, ctx)})
    if args.window:
        parse_schedule(args.window, settings.schedules.timezone)  # bad input fails before the store is read
        if not args.vm:
            raise InputError("--window needs --vm NAME (the VMs to preview it for)")
    start = _start(args.start)
    store = ctx.open_store(create=False)
    vms = store.vms()
    if args.vm:
        wanted = set(args.vm)
        vms = [v for v in vms if v.name in wanted or v.uuid in wanted]
        missing = wanted - {v.name for v in vms} - {v.uuid for v in vms}
        if missing:
            raise InputError(f"--vm {sorted(missing)[0]!r} is not in the store; see 'rightsizer recommend'")
    overrides = {v.uuid: args.window for v in vms} if args.window else None
    catalogue = ctx.catalogue()
    findings = analyse_fleet(store, catalogue, AnalysisOptions.from_settings(settings, catalogue)).by_uuid()
    resolved = resolve_scheduled(vms, findings, settings, overrides=overrides)
    rows = dry_run(resolved, start, days=args.days)
    ctx.out.emit(rows, columns=("when", "vm", "action", "window", "source") if args.output == "table" else None)
    for note in resolved.notes:
        print(f"note: {note}", file=sys.stderr)
    state = "on" if ctx.settings.actions.schedules else "off ([actions] schedules = false): nothing will be applied"
    print(f"{len(resolved.vms)} scheduled VM(s), {len(rows)} action(s) in {args.days:g} days; applying is {state}",
          file=sys.stderr)
    return 0
