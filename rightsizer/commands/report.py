"""``rightsizer report``: write report.html (charts), findings.csv and report.json into a directory."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rightsizer.commands.sourceflags import add_source_flags

if TYPE_CHECKING:
    from rightsizer.context import Context

DESCRIPTION = """\
Write a fleet report into --out: report.html (spend by label and by host, top savings, utilisation vs
capacity; plotly.js is inline so the page works offline), findings.csv (one row per VM; cells that a
spreadsheet would run as formulas are quoted) and report.json (everything). Right-sizing uses
--strategy (default: [rightsizing] strategy); costs follow [costs] (see 'rightsizer costs --help' for
the stopped-VM rule, which the provider does not publish).
"""


def add_parser(sub: argparse._SubParsersAction[Any], parent: argparse.ArgumentParser) -> None:
    """Register ``report``."""
    p = sub.add_parser(
        "report",
        parents=[parent],
        help="write HTML/CSV/JSON fleet report files",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", metavar="DIR", default=None,
                   help="directory for the files (default: [reports] out_dir, var/reports)")
    p.add_argument("--strategy", metavar="NAME", default=None,
                   help="right-sizing strategy (default: [rightsizing] strategy)")
    p.add_argument("--since", default=None, metavar="WHEN",
                   help="window start: ISO date/time or a duration before --until such as 14d "
                        "(default: [costs] window_days, 14d -- the same window as 'costs' and the dashboard)")
    p.add_argument("--until", default=None, metavar="WHEN", help="window end and as-of time (default: now)")
    p.add_argument("--format", dest="formats", action="append", choices=("html", "csv", "json"),
                   help="write only this format (repeatable; default: all three)")
    add_source_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Build the report and list the files written; returns the exit code."""
    from pathlib import Path

    from analytics.fleet import data_as_of, parse_instant
    from analytics.reports import DEFAULT_FORMATS, build_report, write_files
    from collector.errors import InputError

    out_dir = Path(args.out or ctx.settings.reports.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {str(out_dir)!r} is a file, not a directory; pass a directory")
    now = datetime.now(UTC)
    if args.until:
        until = parse_instant(args.until, now=now, flag="--until")
    if args.since:  # check the syntax before touching the store
        parse_instant(args.since, now=now, flag="--since")
    store = ctx.open_source()
    store.refresh_rollups()
    if not args.until:  # imported history that ended long ago is reported as of its end
        span = store.time_range()
        until = data_as_of(span[1] if span else None, now)
    since = parse_instant(args.since, now=until, flag="--since") if args.since else None
    if since is not None and since >= until:
        raise InputError(f"--since {args.since!r} is not before --until ({until.isoformat()}); pick an earlier one")
    report = build_report(store, ctx.catalogue(), ctx.settings, until, strategy=args.strategy, since=since)
    paths = write_files(report, out_dir, tuple(args.formats or DEFAULT_FORMATS))
    rows = [{"file": str(p), "bytes": p.stat().st_size} for p in paths]
    if args.output == "json":
        ctx.out.emit({"files": rows, "vms": len(report.vms), "strategy": report.strategy,
                      "notes": list(report.notes)}, "json")
    else:
        ctx.out.emit(rows)
        for note in report.notes:
            ctx.out.stream.write(f"note: {note}\n")
    return 0
