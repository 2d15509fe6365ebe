"""Wiring of ``rightsizer serve``: collector, exporter, analytics refresh, reports, dashboard.

Thin on purpose: every job calls a plain function from the packages. The collection cycle runs in a
thread of its own on a fixed grid (a late cycle delays the next, never skips it); APScheduler runs the
analytics refresh and reports in its thread pool with ``max_instances=1`` and ``coalesce``.
The /metrics exposition is rendered by the collection job and the analytics job after they finish, and
served as bytes from the metrics server's own threads: a scrape never delays a cycle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collector.errors import RightsizerError, StoreError
from collector.exporter import EconomicsView, VmEconomics, build_registry
from collector.exposition import ExpositionCache
from collector.metrics_process import MetricsProcess
from collector.sampler import Sampler
from core.settings import Settings
from rightsizer.listeners import check_tls_files, dashboard_ssl_context, metrics_banner

if TYPE_CHECKING:
    from analytics.storage import StorageAdvice

log = logging.getLogger("rightsizer.serve")

LIVE, DEMO, IMPORTED, CENTRAL = "live", "demo", "imported", "central"
MODE_TEXT = {
    CENTRAL: "Central: history from a Prometheus-compatible query API (agents collect on each host)",
    LIVE: "Live: sampling libvirt",
    DEMO: "Demo fleet on the libvirt test driver with SYNTHETIC history (not real measurements)",
    IMPORTED: "Imported traces (history loaded with 'rightsizer import'; no live collection)",
}


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


_METRICS_LISTEN, _DASHBOARD_LISTEN = "--metrics-listen / [exporter] listen", "--dashboard-listen / [dashboard] listen"


def _bind(what: str, listen: str, make: Callable[[str, int], Any]) -> Any:
    """Create a listening server on ``listen`` (HOST:PORT); an address that cannot be bound is an InputError."""
    from collector.errors import InputError
    from dashboard.web import probe_bind

    host, port = _split(listen)
    try:
        probe_bind(host, port)  # some servers print and exit on a bind error instead of raising it
        return make(host, port)
    except OSError as exc:  # busy port, foreign or invalid address (socket.gaierror is an OSError)
        reason = exc.strerror or str(exc)
        raise InputError(f"{what} {listen!r}: cannot listen there ({reason}); pick a free port on an address "
                         "of this machine, e.g. 127.0.0.1:9179") from exc


def check_listeners(settings: Settings, role: str) -> None:
    """Bind and release every address ``serve`` will listen on, before it opens, migrates or seeds a store.

    Raises InputError naming the setting of the first address that cannot be bound.
    """
    wanted = [(_METRICS_LISTEN, settings.exporter.listen)]
    if settings.dashboard.enabled and role != "agent":
        wanted.append((_DASHBOARD_LISTEN, settings.dashboard.listen))
    if len(wanted) == 2 and _split(wanted[0][1]) == _split(wanted[1][1]) and _split(wanted[0][1])[1] != 0:
        from collector.errors import InputError

        raise InputError(f"{_METRICS_LISTEN} and {_DASHBOARD_LISTEN} are both {wanted[0][1]!r}; give each its "
                         "own port")
    for what, listen in wanted:
        _bind(what, listen, lambda host, port: None)
    check_tls_files(settings, role)


def _close_server(server: Any) -> None:
    server.shutdown()
    server.server_close()


def probe_local_libvirt(uri: str = "qemu:///system") -> tuple[bool, str]:
    """True when ``uri`` answers and lists at least one domain; with the reason otherwise."""
    from collector.hypervisor.libvirt import LibvirtSource

    source = LibvirtSource(uri)
    try:
        batch = source.sample_all()
    finally:
        source.close()
    if not batch.ok:
        return False, f"{uri} is not reachable ({'; '.join(e.message for e in batch.errors) or 'no answer'})"
    if not batch.samples:
        return False, f"{uri} has no domains"
    return True, f"{uri} has {len(batch.samples)} domain(s)"


def compute_economics(store: Any, catalogue: Any, settings: Settings, now: datetime) -> EconomicsView:
    """Per-VM cost now, latest finding, backup state and idle flag, for the exporter.

    ``hourly_cost`` is the machine type's pay-as-you-go price while it is billed (running, or stopped under
    ``costs.stopped_vm_billing = "full"``) plus the disks' price (capacity per GB-hour and the class fee) while
    they are billed (running, or stopped under "full"/"storage-only"): a shut-off VM whose disks are billed is
    not free. ``monthly_savings`` is signed; an upsize exports its cost as a negative saving.
    """
    from analytics.analysis import AnalysisOptions, analyse_fleet
    from analytics.backups import check_backups
    from analytics.catalogue import load_storage_prices
    from analytics.costs import billed_per_hour
    from analytics.fleet import resolve_machine_type
    from collector.model import VmState

    vms = store.vms()
    # judged as of the newest data, as every other surface judges it (``now`` dates backups and bills)
    analysis = analyse_fleet(store, catalogue, AnalysisOptions.from_settings(settings, catalogue))
    findings = analysis.by_uuid()
    backups = {b.vm_uuid: b for b in check_backups(vms, store.backups(), settings.backups, now)}
    capacity = _latest_capacity(store, now)
    cost_settings = analysis.options.lifecycle.cost_settings if analysis.options.lifecycle else settings.costs
    storage = load_storage_prices() if cost_settings.include_storage else None
    rule = cost_settings.stopped_vm_billing
    out: dict[str, VmEconomics] = {}
    for vm in vms:
        mtype, _how = resolve_machine_type(vm, catalogue)
        if mtype is None:
            continue
        running = vm.state is VmState.RUNNING
        cap = capacity.get(vm.uuid)
        disk_price = (storage.disk_price_per_hour(cap, cost_settings.storage_class)
                      if storage is not None and cap else 0.0)
        storage_cost = billed_per_hour(0.0, disk_price, running=running, rule=rule)
        f = findings.get(vm.uuid)
        b = backups.get(vm.uuid)
        out[vm.uuid] = VmEconomics(
            machine_type=mtype.name, currency=mtype.currency,
            hourly_cost=billed_per_hour(mtype.price_per_hour, disk_price, running=running, rule=rule),
            finding=f.finding if f else "", current_type=mtype.name,
            recommended_type=(f.target_type or "") if f else "",
            monthly_savings=f.monthly_savings if f else 0.0, storage_hourly_cost=storage_cost,
            backup_age_seconds=b.age_s if b is not None else None,
            backup_overdue=(b.is_overdue if b is not None and b.max_age_s is not None else None),
            idle=(f.idle.is_idle if f is not None and f.idle is not None and f.idle.status != "insufficient-data"
                  else None),
            risk=f.risk.value if f else "", pattern=f.pattern if f else "",
            schedule_monthly_savings=(f.schedule.monthly_savings if f is not None and f.schedule is not None
                                      and not f.excluded else None),
            contended=("contention" in f.reasons) if f else None,
            memory_pressure=("memory_pressure" in f.reasons) if f else None,
            **_storage_fields(f.storage if f is not None else None),
        )
    from analytics.placement import LEVELS, placement_risks

    placement = tuple((r.service, level, 1.0 if r.level == level else 0.0)
                      for r in placement_risks(vms, settings.placement) for level in LEVELS)
    return EconomicsView(by_vm=out, placement=placement)


def _storage_fields(advice: StorageAdvice | None) -> dict[str, Any]:
    """The VmEconomics fields of a VM's storage advice (none without advice)."""
    if advice is None:
        return {}
    return {"storage_monthly_savings": advice.monthly_savings, "storage_current_class": advice.current_class,
            "storage_recommended_class": advice.recommended_class, "storage_used_source": advice.used_source}


def _latest_capacity(store: Any, now: datetime) -> dict[str, float]:
    """Each VM's newest known total disk capacity (bytes) from the last two days of hourly rollups."""
    from datetime import timedelta

    hours = store.frame(now - timedelta(days=2), now + timedelta(hours=1), resolution="hour")
    if hours.empty:
        return {}
    known = hours.dropna(subset=["disk_capacity_bytes"])
    newest = known.sort_values("ts").groupby("vm")["disk_capacity_bytes"].last()
    return {str(k): float(v) for k, v in newest.items()}


#: Modules ``serve`` imports before it starts any thread (see :func:`preload_modules`).
PRELOADED: tuple[str, ...] = ("sklearn.cluster", "apscheduler.schedulers.background", "apscheduler.triggers.cron")
DASHBOARD_PRELOADED: tuple[str, ...] = ("dashboard.app", "rightsizer.webapp", "api.routes", "plotly.graph_objects",
                                         "dash")


def preload_modules(*, dashboard: bool) -> None:
    """Import the modules that threads of ``serve`` would otherwise import concurrently, in this thread."""
    import importlib

    for name in PRELOADED + (DASHBOARD_PRELOADED if dashboard else ()):
        importlib.import_module(name)


def make_apply_hook(settings: Settings, store: Any, catalogue: Any) -> Callable[..., str]:
    """The dashboard's apply control: resize one VM to a machine type through the action module.

    Same path as ``rightsizer apply --yes`` (pre-checks, lock, audit, verify, revert). Raises ActionError
    subclasses for refusals; returns the outcome text otherwise.
    """
    from analytics.fleet import resolve_machine_type
    from collector.actions.runner import run_plan, single_step_plan
    from collector.errors import ActionFailed, ActionSkipped
    from collector.model import VmRef
    from core.plan import SizeSpec

    def apply(vm_uuid: str, machine_type: str, *, actor: str) -> str:
        vm = next((v for v in store.vms() if v.uuid == vm_uuid), None)
        if vm is None:
            raise ActionSkipped(f"VM {vm_uuid!r} is not in the store")
        target = catalogue.get(machine_type)
        if target is None:
            raise ActionFailed(f"machine type {machine_type!r} is not in the catalogue")
        current, _how = resolve_machine_type(vm, catalogue)
        plan = single_step_plan(
            VmRef(vm.uri, vm.uuid, vm.name),
            SizeSpec(vm.vcpus, vm.memory_bytes, current.name if current else ""),
            SizeSpec(target.vcpus, target.memory_bytes, target.name),
            price_before=current.price_per_hour if current else None, price_after=target.price_per_hour,
            currency=target.currency,
        )
        (result,) = run_plan(plan, settings.actions, store=store, apply=True,
                             actor=actor)
        return f"{result.result}: {result.reason}"

    return apply


@dataclass
class Service:
    """Everything ``serve`` runs; ``start`` then ``wait`` until ``stop``."""

    settings: Settings
    store: Any
    catalogue: Any
    sampler: Sampler | None
    data_mode: str
    mode_detail: str = ""
    role: str = "all"  # all | agent (collector + exporter only)
    #: Called after every collection cycle with whether it stored samples (systemd READY/WATCHDOG, see serve).
    on_cycle: Callable[[bool], None] | None = None
    economics: EconomicsView = field(default_factory=EconomicsView)
    exposition: ExpositionCache | None = None
    _scheduler: Any = None
    _power_job: Any = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _stoppers: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.cron import CronTrigger

        # Every heavy import finishes here, in this thread, before the first thread starts: two threads
        # importing the same modules (dash -> plotly -> narwhals here, scikit-learn's k-means in the pattern
        # fit) can end in importlib's _DeadlockError and kill serve at start.
        preload_modules(dashboard=self.settings.dashboard.enabled and self.role != "agent")
        log.info("data mode: %s (%s)%s", MODE_TEXT[self.data_mode], self.mode_detail,
                 "; role: agent (collector + exporter only)" if self.role == "agent" else "")
        log.info("store: %s", self.store.path)
        scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1,
                                                                    "misfire_grace_time": 30})
        self.exposition = ExpositionCache(build_registry(self._snapshot, lambda: self.economics))
        exposition = self.exposition
        listen = self.settings.exporter.listen
        server = _bind(_METRICS_LISTEN, listen,
                       lambda host, port: MetricsProcess(exposition, host, port,
                                                         self.settings.exporter.web_config_file))
        self._stoppers.append(("metrics server", lambda: _close_server(server)))
        log.info("metrics: %s", metrics_banner(listen, self.settings.exporter.web_config_file))
        interval = self.settings.collector.interval_s
        exposition.start()
        self._stoppers.append(("exposition renderer", exposition.stop))
        if self.sampler is not None:
            self.collect_once()
            loop = threading.Thread(target=self._collect_loop, args=(interval,), name="collector", daemon=True)
            loop.start()
            self._stoppers.append(("collector", lambda: loop.join(10)))
        agent = self.role == "agent"
        if not agent:
            self.refresh_economics()
            scheduler.add_job(self.refresh_economics, "interval", seconds=max(interval, 300.0), id="economics")
        if self.settings.actions.schedules and not agent:
            self._scheduler = scheduler
            self.sync_schedules()
        if self.settings.reports.cron and not agent:
            try:
                trigger = CronTrigger.from_crontab(self.settings.reports.cron, timezone=UTC)
            except ValueError as exc:
                from collector.errors import ConfigError

                raise ConfigError(f"reports.cron = {self.settings.reports.cron!r}: {exc}") from exc
            scheduler.add_job(self.write_report, trigger, id="report")
            log.info("reports: %r into %s", self.settings.reports.cron, self.settings.reports.out_dir)
        if self.settings.reports.digest_cron and not agent:
            from rightsizer.delivery import schedule_digest

            schedule_digest(scheduler, self.settings, self.store, self.catalogue)
        scheduler.start()
        self._stoppers.append(("scheduler", lambda: scheduler.shutdown(wait=True)))
        if self.settings.dashboard.enabled and not agent:
            self._start_dashboard()

    def _start_dashboard(self) -> None:
        from api.service import make_runner
        from dashboard.security import exposure_warning
        from dashboard.web import start_server
        from dashboard.wsgiserver import Limits
        from rightsizer.webapp import build_web_app

        listen = self.settings.dashboard.listen
        actions = self.settings.actions.enabled
        warning = exposure_warning(listen, actions_enabled=actions)
        if warning:
            log.warning("%s", warning)
        hook = make_apply_hook(self.settings, self.store, self.catalogue) if actions else None
        runner = make_runner(self.settings, self.store) if actions else None
        app = build_web_app(self.settings, self.store, self.catalogue, data_mode=self.data_mode, actions=hook,
                            plan_runner=runner)
        limits = Limits(max_body_bytes=self.settings.dashboard.max_body_bytes)
        tls = dashboard_ssl_context(self.settings.dashboard)
        web = _bind(_DASHBOARD_LISTEN, listen,
                    lambda host, port: start_server(app.server, host, port, limits=limits, ssl_context=tls))
        self._stoppers.append(("dashboard server", web.stop))
        log.info("dashboard: %s/", web.url)

    def _snapshot(self) -> Any:
        from collector.sampler import Snapshot

        return self.sampler.snapshot if self.sampler is not None else Snapshot()

    def _collect_loop(self, interval_s: float) -> None:
        """Run a cycle every ``interval_s`` on a fixed grid in a thread of its own until ``stop``.

        A cycle that overruns its slot delays the next one (which starts at once) instead of skipping it,
        as APScheduler's ``max_instances`` would; nothing else (jobs, renders, scrapes) shares this thread.
        """
        next_at = time.monotonic() + interval_s
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            self.collect_once()
            next_at += interval_s
            late_s = time.monotonic() - next_at
            if late_s > 0:
                log.warning("collection cycle overran its %.0f s interval by %.1f s; next cycle starts now",
                            interval_s, late_s)
                next_at = time.monotonic()

    def collect_once(self) -> None:
        if self.sampler is None:
            return
        stored = False
        try:
            stored = any(batch.ok for batch in self.sampler.poll_once())
        except StoreError as exc:  # a full disk: one line per cycle, counted on /metrics, /readyz fails
            log.error("collection cycle not stored: %s; retrying next interval", exc)
        except RightsizerError:
            log.exception("collection cycle failed; retrying next interval")
        self._render()
        if self.on_cycle is not None:
            self.on_cycle(stored)

    def _render(self) -> None:
        if self.exposition is not None:
            self.exposition.request_refresh()

    def refresh_economics(self) -> None:
        try:
            self.economics = compute_economics(self.store, self.catalogue, self.settings, datetime.now(UTC))
        except StoreError as exc:
            log.error("cost/recommendation refresh failed: %s; keeping the previous view", exc)
        except RightsizerError:
            log.exception("cost/recommendation refresh failed; keeping the previous view")
        self._render()
        self.sync_schedules()

    def sync_schedules(self) -> None:
        """(Re)register the start/stop cron jobs of every scheduled VM ([actions] schedules = true)."""
        if self._scheduler is None:
            return
        from analytics.analysis import AnalysisOptions, analyse_fleet
        from rightsizer.schedules import make_power_job, register_jobs, resolve_scheduled

        try:
            vms = self.store.vms()
            labelled = any((vm.labels or {}).get("schedule") for vm in vms)
            findings = analyse_fleet(self.store, self.catalogue, AnalysisOptions.from_settings(
                self.settings, self.catalogue)).by_uuid() if labelled else {}
            resolved = resolve_scheduled(vms, findings, self.settings)
            if self._power_job is None:
                self._power_job = make_power_job(self.settings, self.store)
            jobs = register_jobs(self._scheduler, resolved, self._power_job)
        except RightsizerError:
            log.exception("schedule refresh failed; keeping the previous jobs")
            return
        for note in resolved.notes:
            log.warning("schedule: %s", note)
        log.info("schedules: %d VM(s), %d cron job(s)", len(resolved.vms), len(jobs))

    def write_report(self) -> list[Path]:
        from analytics.reports import write_report

        try:
            paths: list[Path] = write_report(self.store, self.catalogue, self.settings,
                                             Path(self.settings.reports.out_dir), datetime.now(UTC))
            log.info("report written: %s", ", ".join(str(p) for p in paths))
            return paths
        except RightsizerError:
            log.exception("scheduled report failed")
            return []

    def wait(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    def stop(self) -> None:
        """Stop jobs and servers and close the store; safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        for name, stop in reversed(self._stoppers):
            try:
                stop()
            except Exception:  # noqa: BLE001 - shutting down: report it and stop the other parts too
                log.exception("stopping the %s failed", name)
        if self.sampler is not None:
            self.sampler.close()
        log.info("stopped")

