"""``rightsizer serve``: collector + /metrics + scheduled analytics and reports + dashboard, until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rightsizer.commands.sourceflags import add_source_flags

if TYPE_CHECKING:
    from collector.sdnotify import ServiceNotifier
    from rightsizer.context import Context

log = logging.getLogger("rightsizer.serve")
DEMO_DB = "var/demo.db"
DEMO_FLEET = "var/demo-fleet.xml"


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "serve", parents=[parent], help="run collector, exporter, reports and dashboard together",
        description="Sample libvirt on an interval, serve Prometheus metrics and the dashboard, refresh costs "
                    "and recommendations, and write scheduled reports. Without --uri or configured URIs it uses "
                    "[collector] local_uri (qemu:///system) when that host has domains, else the history "
                    "already in the store, else a built-in demo fleet on the libvirt test driver with synthetic "
                    "history (shown as such). Stops cleanly on SIGTERM or Ctrl-C.",
    )
    p.add_argument("--uri", action="append", metavar="URI", help="libvirt URI to sample, repeatable")
    p.add_argument("--interval", type=float, metavar="SECONDS", help="seconds between collection cycles")
    p.add_argument("--metrics-listen", metavar="HOST:PORT", help="where /metrics listens (127.0.0.1:9178)")
    p.add_argument("--web-config-file", metavar="FILE",
                   help="exporter-toolkit web configuration (TLS, basic auth) for /metrics ([exporter] "
                        "web_config_file)")
    p.add_argument("--dashboard-listen", metavar="HOST:PORT", help="where the dashboard listens (127.0.0.1:8050)")
    p.add_argument("--demo", action="store_true", help="force the demo fleet (synthetic history)")
    p.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    p.add_argument("--role", choices=("all", "agent"), default="all",
                   help="all (default): everything in one process; agent: collector + /metrics only, for each "
                        "hypervisor of a fleet scraped by Prometheus/vmagent (no analytics, reports or dashboard; "
                        "same metric names). The central role is 'serve --source prometheus'.")
    add_source_flags(p)
    p.set_defaults(func=run, settings_overrides=_overrides)


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    from rightsizer.commands.collect import collector_overrides

    over = collector_overrides(args)
    if args.metrics_listen:
        over["exporter"] = {"listen": args.metrics_listen}
    if args.web_config_file:
        over.setdefault("exporter", {})["web_config_file"] = args.web_config_file
    if args.dashboard_listen:
        over.setdefault("dashboard", {})["listen"] = args.dashboard_listen
    if args.no_dashboard:
        over.setdefault("dashboard", {})["enabled"] = False
    return over


def _choose_mode(args: argparse.Namespace, ctx: Context) -> tuple[str, str, list[str]]:
    """Pick live / imported / demo and the URIs to sample, with the reason.

    Order: --demo; URIs from flags or config; [collector] local_uri when it has domains; a store that already
    holds data (imported traces, or history collected earlier); else the built-in demo fleet.
    """
    from rightsizer.service import CENTRAL, DEMO, IMPORTED, LIVE, probe_local_libvirt

    if ctx.is_promql:
        if args.role == "agent":
            from collector.errors import InputError

            raise InputError("--role agent samples libvirt; it does not read --source prometheus (drop one)")
        return CENTRAL, f"reading {ctx.settings.source.url}", []
    if args.demo:
        return DEMO, "requested with --demo", []
    if ctx.settings.collector.uris:
        return LIVE, "URIs from flags/config", list(ctx.settings.collector.uris)
    local = ctx.settings.collector.local_uri
    ok, why = probe_local_libvirt(local)
    if ok or args.role == "agent":  # an agent keeps sampling its host and reports rightsizer_up=0 meanwhile
        return LIVE, why, [local]
    if ctx.db_path.exists():
        store = ctx.open_store()
        mode = store.get_meta("data_mode")
        if mode == "demo":
            return DEMO, f"{why}; reusing the demo store {ctx.db_path}", []
        if store.vms():
            kind = IMPORTED if mode == "import" else LIVE
            return kind, f"{why}; serving the history stored in {ctx.db_path} without collecting", []
    return DEMO, why, []


def _prepare_demo(ctx: Context, args: argparse.Namespace) -> Any:
    """Write the demo fleet, seed its synthetic history once; return a DemoSource over its test:/// URI."""
    from collector.errors import InputError
    from collector.hypervisor.libvirt import LibvirtSource
    from rightsizer.demo import demo_fleet, write_demo_fleet_xml
    from rightsizer.demo_history import seed_synthetic_history
    from rightsizer.demo_source import DemoSource

    if not args.db:  # keep demo data out of the real store
        ctx.close()  # the mode probe may have opened the default store
        ctx.settings.store.path = DEMO_DB
    elif ctx.db_path.exists():
        existing = ctx.open_store()
        if existing.get_meta("data_mode") != "demo" and existing.vms():
            raise InputError(f"{ctx.db_path} holds real history; the demo fleet needs an empty store or the "
                             f"default {DEMO_DB} (drop --db)")
    fleet_path = Path(DEMO_FLEET).resolve()
    uri = f"test://{fleet_path}"
    fleet = demo_fleet()
    write_demo_fleet_xml(fleet_path, vms=fleet)
    store = ctx.open_store(writer=True)
    if store.get_meta("data_mode") != "demo":
        log.info("seeding 30 days of synthetic demo history into %s", ctx.db_path)
        n = seed_synthetic_history(store, fleet, uri=uri)
        log.info("seeded %d synthetic samples", n)
    return DemoSource(LibvirtSource(uri), fleet)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from analytics.analysis import configured_policies
    from collector.sampler import Sampler
    from rightsizer.commands.collect import make_sources
    from rightsizer.service import CENTRAL, DEMO, LIVE, Service, check_listeners

    check_listeners(ctx.settings, args.role)  # a bad address fails before any store is created or seeded
    if args.role != "agent":
        configured_policies(ctx.settings)  # a bad policy file stops serve at start (exit 2), not in a job
        if ctx.settings.dashboard.enabled:
            from rightsizer.access_log import log_access_mode

            log_access_mode(ctx.settings)
    mode, why, uris = _choose_mode(args, ctx)
    sources = [_prepare_demo(ctx, args)] if mode == DEMO else make_sources(ctx, uris)
    store = ctx.open_source() if mode == CENTRAL else ctx.open_store(writer=True)
    sampler = None
    if sources:
        sampler = Sampler(sources, store, interval_s=ctx.settings.collector.interval_s)
        if mode == LIVE:
            store.set_meta("data_mode", "live")
    notifier = _notifier(sampler is not None, ctx.settings.collector.interval_s)
    service = Service(settings=ctx.settings, store=store, catalogue=ctx.catalogue(), sampler=sampler,
                      data_mode=mode, mode_detail=why, role=args.role, on_cycle=notifier.cycle_done)

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        service.stop()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        service.start()
        notifier.started()
        while not service.wait(1.0):
            pass
    finally:
        notifier.stopping()
        service.stop()
    return 0


def _notifier(collects: bool, interval_s: float) -> ServiceNotifier:
    """The systemd notifier (a no-op outside a Type=notify unit); warns when the watchdog is too tight."""
    from collector.sdnotify import ServiceNotifier, watchdog_seconds

    watchdog = watchdog_seconds()
    if watchdog is not None and collects and watchdog < 2 * interval_s:
        log.warning("WatchdogSec=%.0f is less than twice the collection interval (%.0f s): systemd may restart a "
                    "healthy collector; raise WatchdogSec or lower [collector] interval_s", watchdog, interval_s)
    return ServiceNotifier(collects=collects)
