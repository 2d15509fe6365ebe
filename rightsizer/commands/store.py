"""``rightsizer store backup PATH`` and ``rightsizer store check``: care of the SQLite store."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rightsizer.context import Context

DESCRIPTION = """\
backup PATH: copy the store (--db / [store] path) to PATH with SQLite's online backup API. Safe while
'serve' or 'collect' writes: the copy is the store as of one commit. The copy is a plain SQLite file that
any rightsizer command reads with --db PATH.
check: read-only health check of the store: integrity, schema version, size, rows, and whether the history
kept matches [store] raw_retention_days / rollup_retention_days. Exit 0 healthy, 1 a problem found.
Retention: raw samples are kept raw_retention_days (35), hourly rollups rollup_retention_days (400); a
running collector deletes older rows once an hour. See docs/store.md.
"""


def add_parser(sub: argparse._SubParsersAction[Any], parent: argparse.ArgumentParser) -> None:
    """Register ``store`` with its ``backup`` and ``check`` actions."""
    p = sub.add_parser("store", parents=[parent], help="back up or check the SQLite store",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("backup", "check"), help="backup: copy to PATH; check: health check")
    p.add_argument("path", nargs="?", metavar="PATH", help="backup destination file (backup only)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing backup file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from collector.errors import InputError
    from collector.store import care

    if args.action == "backup":
        if not args.path:
            raise InputError("store backup needs a destination PATH, e.g. 'rightsizer store backup /var/backups/"
                             "rightsizer.db'")
        result = care.backup(ctx.db_path, Path(args.path), overwrite=args.overwrite)
        ctx.out.emit([{"store": str(result.source), "backup": str(result.dest), "bytes": result.bytes,
                       "seconds": round(result.seconds, 3), "schema_version": result.schema_version}])
        return 0
    if args.path:
        raise InputError(f"store check takes no PATH (got {args.path!r}); pass the store with --db")
    s = ctx.settings.store
    report = care.check(ctx.db_path, raw_retention_days=s.raw_retention_days,
                        rollup_retention_days=s.rollup_retention_days)
    row: dict[str, Any] = {"store": str(report.path), "ok": report.ok, "integrity": report.integrity,
                           "schema_version": report.schema_version, "bytes": report.bytes,
                           "wal_bytes": report.wal_bytes, **{f"{t}_rows": n for t, n in report.rows.items()},
                           "raw_from": report.raw_span[0] if report.raw_span else None,
                           "raw_until": report.raw_span[1] if report.raw_span else None,
                           "raw_retention_days": s.raw_retention_days,
                           "rollup_retention_days": s.rollup_retention_days}
    if args.output == "json":
        ctx.out.emit({**row, "problems": list(report.problems)}, "json")
    else:
        ctx.out.emit([{"check": k, "value": v} for k, v in row.items()])
        for problem in report.problems:
            ctx.out.stream.write(f"problem: {problem}\n")
    return 0 if report.ok else 1
