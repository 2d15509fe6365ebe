"""``rightsizer doctor``: check this installation's setup, one line per check (see rightsizer/doctor.py)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rightsizer.context import Context

DESCRIPTION = """\
Check the setup 'serve' would run with, one line per check: configuration (and the catalogue, policies and
mapping files it names); each libvirt URI (reachable, domains, read-write rights); every VM's machine type in
the catalogue (VMs without a price are named); the Prometheus source when [source] kind = "prometheus" (answers,
holds the agents' series, measured sample interval against resolution_s); the store (integrity, schema
version, size, retention); the /metrics and dashboard listeners; the clock.
Each line starts with OK, WARN (works, but look), FAIL or SKIP (not used here).
Exit 0 when nothing failed, 1 when a check failed, 2 on bad input (config, flags).
URIs: --uri, else [collector] uris, else [collector] local_uri; --demo checks the built-in demo fleet and
store ('serve --demo').
"""


def add_parser(sub: argparse._SubParsersAction[Any], parent: argparse.ArgumentParser) -> None:
    """Register ``doctor``."""
    p = sub.add_parser("doctor", parents=[parent], help="check config, libvirt, prices, source, store, ports, clock",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--uri", action="append", metavar="URI", help="libvirt URI to check, repeatable")
    p.add_argument("--demo", action="store_true", help="check the demo fleet and its store (as 'serve --demo')")
    p.add_argument("--role", choices=("all", "agent"), default="all",
                   help="agent: as 'serve --role agent' (no dashboard listener to check)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    import os
    import tempfile
    from pathlib import Path

    from rightsizer.commands.serve import DEMO_DB
    from rightsizer.doctor import FAIL, Doctor

    settings = ctx.settings
    config = args.config or os.environ.get("RIGHTSIZER_CONFIG")
    source = f"config {config!r}" if config else "defaults (no --config)"
    store_path = Path(DEMO_DB) if args.demo and not args.db else ctx.db_path
    with tempfile.TemporaryDirectory(prefix="rightsizer-doctor-") as tmp:
        if args.demo:
            from rightsizer.demo import write_demo_fleet_xml

            fleet = Path(tmp) / "demo-fleet.xml"
            write_demo_fleet_xml(fleet)
            uris = [f"test://{fleet}"]
        elif args.uri or settings.collector.uris:
            uris = list(args.uri or settings.collector.uris)
        elif settings.source.kind == "prometheus":
            uris = []
        else:
            uris = [settings.collector.local_uri]
        doctor = Doctor(settings=settings, config_source=source, uris=uris, store_path=store_path, demo=args.demo,
                        role=args.role)
        checks = []
        for check in doctor.run():
            checks.append(check)
            if args.output == "table":
                ctx.out.stream.write(check.line() + "\n")
                ctx.out.stream.flush()
    failed = sum(c.status == FAIL for c in checks)
    if args.output == "table":
        ctx.out.stream.write(f"{len(checks)} checks, {failed} failed\n")
    else:
        ctx.out.emit([{"check": c.name, "status": c.status, "detail": c.detail} for c in checks])
    return 1 if failed else 0
