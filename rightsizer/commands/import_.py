"""``rightsizer import``: load a public VM trace (Bitbrains GWA-T-12) into the store."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rightsizer.context import Context

DESCRIPTION = """\
Read every per-VM file of a trace directory, convert it to our units (CPU demand in vCPU-equivalents =
usage MHz / (capacity MHz / cores); memory KB x 1024) and store it as history, in one transaction.
Rows the trace cannot stand behind are counted and reported per file: repeated timestamps and
timestamps going backwards are dropped; rows with zero cores/capacity are kept as "not running"; gaps,
CPU above capacity and memory above provisioned are kept and counted. A malformed file stops the import
before anything is written (exit 2, naming file, line, field and value).

Bitbrains timestamps are epoch seconds despite their "[ms]" label. The trace is from 2013; with
--shift-to-now every timestamp moves so that the newest sample lands on the current hour, which keeps it
inside the store's retention and lets 'rightsizer recommend' judge it as recent.
"""


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "import", parents=[parent], help="load a VM trace directory (Bitbrains) into the store",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="DIR", help="directory of per-VM CSV files (e.g. .../rnd/2013-8)")
    p.add_argument("--format", choices=("bitbrains",), default="bitbrains", help="trace format")
    p.add_argument("--shift-to-now", action="store_true",
                   help="move all timestamps so the newest sample falls in the current hour")
    p.set_defaults(func=run)


def _then(items: Iterable[Any], message: str) -> Iterator[Any]:
    """Yield ``items``, then say on stderr what the silent step after them does."""
    yield from items
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from datetime import UTC, datetime
    from pathlib import Path

    from tqdm import tqdm

    from analytics.traces import quality_rows, read_bitbrains_dir
    from collector.errors import InputError

    directory = Path(args.path)
    vms = read_bitbrains_dir(
        directory, progress=lambda files: tqdm(files, desc="read", unit="file", file=sys.stderr, disable=None),
    )
    shift_s = 0.0
    if args.shift_to_now:
        newest = max(vm.end_s for vm in vms)
        now_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0).timestamp()
        shift_s = now_hour - 3600.0 * (newest // 3600.0)
    dataset = directory.name
    records = [vm.record(dataset=dataset) for vm in vms]
    if shift_s:
        from dataclasses import replace
        from datetime import timedelta

        delta = timedelta(seconds=shift_s)
        records = [replace(r, first_seen=r.first_seen + delta, last_seen=r.last_seen + delta) for r in records]
    total = sum(vm.quality.kept for vm in vms)
    points = (p for vm in vms for p in vm.usage_points(shift_s=shift_s))
    store = ctx.open_store(writer=True)
    mode = store.get_meta("data_mode")
    if mode == "demo":
        raise InputError(f"{ctx.db_path} holds the demo fleet's synthetic history; import real traces into "
                         "another store with --db PATH")
    if mode == "live" or any(vm.source == "libvirt" for vm in store.vms()):
        raise InputError(f"{ctx.db_path} holds history collected from libvirt; import traces into another "
                         "store with --db PATH so the two are never mixed")
    bar = tqdm(points, total=total, desc="convert", unit="row", file=sys.stderr, disable=None)
    written = store.write_history(records, _then(bar, f"storing {total:,} rows and their hourly rollups in one "
                                                      "transaction ..."))
    if mode is None:
        store.set_meta("data_mode", "import")  # serve shows the store as imported traces
    rows: list[dict[str, Any]] = quality_rows(vms)
    totals: dict[str, Any] = {"file": "(total)", "vm": f"{len(vms)} VMs", "cores": sum(vm.cores for vm in vms)}
    for key in ("rows", "kept", "duplicate_timestamps", "out_of_order", "not_running", "gaps",
                "cpu_above_capacity", "memory_above_provisioned", "memory_used_zero"):
        totals[key] = sum(int(r[key]) for r in rows)
    rows.append(totals)
    if args.output == "json":
        ctx.out.emit({"imported_vms": len(vms), "rows_written": written, "shift_s": shift_s,
                      "db": str(ctx.db_path), "files": rows})
    else:
        ctx.out.emit(rows)
        print(f"imported {len(vms)} VMs, {written} rows into {ctx.db_path}"
              + (f" (timestamps shifted by {shift_s / 86400:.1f} days)" if shift_s else ""), file=sys.stderr)
    return 0
