"""``rightsizer doctor``: check an installation's own setup, one line per check.

Checks, in order: the configuration (and the catalogue, policies and mapping files it names); each libvirt URI
(reachable, domains listed, read-write rights for balloon stats and actions); every VM's machine type in the
catalogue; the Prometheus source (answers, holds the series the central role reads, the sample interval against
``resolution_s``); the store (integrity, schema, size, retention); the listeners; the clock. A check is ``ok``,
``warn`` (works, but look), ``fail`` or ``skip`` (not used by this setup); any ``fail`` makes the exit code 1.
"""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.errors import RightsizerError
from core.settings import Settings

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
#: A store sample newer than the local clock by more than this means one of the clocks is wrong.
CLOCK_SKEW_S = 300.0
#: The Prometheus server's clock may differ from ours by at most this much.
ENGINE_SKEW_S = 30.0
#: Most VMs named in one line.
MAX_NAMED = 10


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str

    def line(self) -> str:
        return f"{self.status.upper():<4} {self.name}: {self.detail}"


@dataclass
class Vm:
    """What the machine-type check needs of a VM."""

    name: str
    vcpus: int
    memory_bytes: int
    labels: dict[str, str]


@dataclass
class Doctor:
    settings: Settings
    config_source: str
    uris: Sequence[str]
    store_path: Path
    demo: bool = False
    role: str = "all"  # all | agent (no dashboard)
    vms: list[Vm] = field(default_factory=list)
    newest_sample: datetime | None = None
    catalogue: Any = None

    def run(self) -> Iterator[Check]:
        yield self.check_config()
        yield from self.check_libvirt()
        yield from self.check_prometheus()
        yield self.check_machine_types()
        yield self.check_store()
        yield from self.check_listeners()
        yield self.check_clock()

    # -- configuration -----------------------------------------------------------------------
    def check_config(self) -> Check:
        from analytics.analysis import configured_policies
        from analytics.catalogue import load_catalogue

        try:
            self.catalogue = load_catalogue(self.settings.costs.catalogue)
            policies = configured_policies(self.settings)
            if self.settings.source.mapping_file:
                from collector.store.promql_mapping import load_mapping

                load_mapping(self.settings.source.mapping_file)
        except RightsizerError as exc:
            return Check("config", FAIL, str(exc))
        cat = self.catalogue
        return Check("config", OK, f"{self.config_source} valid; catalogue {self.settings.costs.catalogue!r} "
                     f"({len(cat.machine_types())} machine types, {cat.currency}); {len(policies)} policy override(s)")

    # -- libvirt -----------------------------------------------------------------------------
    def check_libvirt(self) -> Iterator[Check]:
        if self.settings.source.kind == "prometheus" and not self.uris:
            yield Check("libvirt", SKIP, "central role ([source] kind = 'prometheus'): agents sample libvirt")
            return
        for uri in self.uris:
            yield self._check_uri(uri)

    def _check_uri(self, uri: str) -> Check:
        import libvirt

        from collector.hypervisor.libvirt import LibvirtSource

        source = LibvirtSource(uri)
        try:
            batch = source.sample_all()
            driver = source.driver
        finally:
            source.close()
        name = f"libvirt {uri}"
        if not batch.ok:
            why = "; ".join(e.message for e in batch.errors) or "no answer"
            return Check(name, FAIL, f"not reachable ({why}); start libvirtd, or run as a user in the libvirt group")
        for s in batch.samples:
            self.vms.append(Vm(s.ref.name, s.vcpus, s.memory_bytes, dict(s.labels)))
        listed = f"{len(batch.samples)} domain(s) listed (driver {driver})"
        try:
            conn = libvirt.open(uri)
            conn.close()
        except libvirt.libvirtError as exc:
            reason = str(exc).splitlines()[0]
            if self.settings.actions.enabled:
                return Check(name, FAIL, f"{listed}; read-write refused ({reason}): [actions] enabled needs it; "
                             "add the service user to the libvirt group")
            return Check(name, WARN, f"{listed}; read-only ({reason}): collection works, balloon stats and "
                         "resizes need read-write (libvirt group)")
        return Check(name, OK, f"{listed}; read-write (collection, balloon stats and resizes)")

    # -- Prometheus source -------------------------------------------------------------------
    def check_prometheus(self) -> Iterator[Check]:
        src = self.settings.source
        if src.kind != "prometheus":
            yield Check("prometheus", SKIP, "[source] kind = 'sqlite': history is in the local store")
            return
        from collector.store.promql_factory import promql_client, promql_store

        try:
            client = promql_client(self.settings)
            client.labels()
        except RightsizerError as exc:
            yield Check("prometheus", FAIL, str(exc))
            return
        store = promql_store(self.settings, None, client)
        schema = store.schema
        now = datetime.now(UTC).timestamp()
        start = now - store.history_days * 86400.0
        needed = (schema.info, schema.cpu_seconds, schema.vcpus, schema.memory_bytes)
        try:
            missing = [m for m in needed if not client.series(store._sel(m), start, now)]
            ident = schema.uuid_label
            gauge = {s.get(ident) for s in client.series(store._sel(schema.cpu_usage), start, now)} \
                if schema.cpu_usage else set()
            counter = {s.get(ident) for s in client.series(store._sel(schema.cpu_seconds), start, now)}
            measured = store.sample_interval_s(now) if not missing else None
            engine_now = client.query("time()", now)
            vms = store.vms() if not missing else []
        except RightsizerError as exc:
            yield Check("prometheus", FAIL, str(exc))
            return
        if missing:
            yield Check("prometheus", FAIL, f"{client.url} answers but holds no {', '.join(missing)} in the last "
                        f"{store.history_days:g} days; point [source] url at the engine that scrapes the agents")
            return
        note = ""
        if schema.cpu_usage and not gauge:
            note = f"; {schema.cpu_usage} absent: CPU from {schema.cpu_seconds}"
        elif schema.cpu_usage and counter - gauge:
            note = (f"; {schema.cpu_usage} absent for {len(counter - gauge)} of {len(counter)} VMs (older agents?): "
                    f"their CPU from {schema.cpu_seconds}")
        yield Check("prometheus", WARN if note else OK,
                    f"{client.url} answers; {len(vms)} VM(s) with the {schema.name} series{note}")
        self.vms.extend(Vm(v.name, v.vcpus, v.memory_bytes, dict(v.labels)) for v in vms)
        explicit = "resolution_s" in src.model_fields_set
        if measured is None:
            yield Check("sample interval", WARN, f"cannot be measured (no VM's {schema.cpu_seconds} moved in the "
                        f"last hour); resolution_s = {src.resolution_s}")
        elif abs(measured - src.resolution_s) <= 0.1 * src.resolution_s:
            yield Check("sample interval", OK, f"measured {measured:.0f} s; resolution_s = {src.resolution_s} fits")
        elif explicit:
            yield Check("sample interval", FAIL, f"measured {measured:.0f} s but resolution_s = {src.resolution_s}; "
                        f"set resolution_s = {measured:.0f} (or remove it to use the measured interval)")
        else:
            yield Check("sample interval", OK, f"measured {measured:.0f} s; resolution_s not set, so "
                        f"{measured:.0f} is used")
        if engine_now and engine_now[0].values:
            self._engine_skew = float(engine_now[0].values[0]) - datetime.now(UTC).timestamp()

    _engine_skew: float | None = None

    # -- machine types -----------------------------------------------------------------------
    def check_machine_types(self) -> Check:
        if self.catalogue is None:
            return Check("machine types", SKIP, "no catalogue (see the config check)")
        if not self.vms:
            return Check("machine types", SKIP, "no VMs listed")
        from analytics.fleet import MACHINE_TYPE_LABEL

        unknown: list[str] = []
        unpriced: list[str] = []
        labelled = inferred = 0
        for vm in self.vms:
            name = vm.labels.get(MACHINE_TYPE_LABEL, "").strip()
            if name:
                if self.catalogue.get(name) is None:
                    unknown.append(f"{vm.name!r} ({MACHINE_TYPE_LABEL}={name!r})")
                else:
                    labelled += 1
            elif self.catalogue.cheapest_fitting(vm.vcpus, vm.memory_bytes) is None:
                unpriced.append(f"{vm.name!r} ({vm.vcpus} vCPU, {vm.memory_bytes / 2**30:g} GiB)")
            else:
                inferred += 1
        if unknown or unpriced:
            parts = []
            if unknown:
                parts.append(f"{len(unknown)} VM(s) name a machine type the catalogue lacks: {_some(unknown)}")
            if unpriced:
                parts.append(f"{len(unpriced)} VM(s) larger than every catalogue type: {_some(unpriced)}")
            return Check("machine types", FAIL, "; ".join(parts) + "; fix the labels or add the types to the "
                         "catalogue ('rightsizer catalogue check FILE')")
        return Check("machine types", OK, f"{len(self.vms)} VM(s) priced: {labelled} by their machine_type label, "
                     f"{inferred} by size")

    # -- store -------------------------------------------------------------------------------
    def check_store(self) -> Check:
        from collector.store import care
        from collector.store.writer import writer_lock_path

        path = self.store_path
        if not path.exists():
            parent = next((p for p in (path.parent, *path.parent.parents) if p.exists()), Path("/"))
            import os

            if not os.access(parent, os.W_OK):
                return Check("store", FAIL, f"{str(path)!r} does not exist and {str(parent)!r} is not writable; "
                             "fix [store] path or the directory's owner")
            return Check("store", OK, f"{str(path)!r} not created yet (the first 'serve' or 'collect' makes it)")
        s = self.settings.store
        try:
            report = care.check(path, raw_retention_days=s.raw_retention_days,
                                rollup_retention_days=s.rollup_retention_days)
        except RightsizerError as exc:
            return Check("store", FAIL, str(exc))
        if report.schema_version < 0:  # not even readable
            return Check("store", FAIL, "; ".join(report.problems))
        if report.raw_span is not None:
            self.newest_sample = report.raw_span[1]
        elif report.hourly_span is not None:
            self.newest_sample = report.hourly_span[1]
        size = (report.bytes + report.wal_bytes) / 2**20
        span = (f"raw {report.raw_span[0]:%Y-%m-%d}..{report.raw_span[1]:%Y-%m-%d}" if report.raw_span
                else "no raw samples")
        writer = _lock_holder(writer_lock_path(path))
        detail = (f"{str(path)!r}: integrity {report.integrity}, schema {report.schema_version}, {size:.1f} MiB, "
                  f"{report.rows.get('vms', 0)} VMs, {span}; retention raw {s.raw_retention_days} d, hourly "
                  f"{s.rollup_retention_days} d" + (f"; written by {writer}" if writer else ""))
        if not report.ok:
            return Check("store", FAIL, detail + "; " + "; ".join(report.problems))
        return Check("store", OK, detail)

    # -- listeners ---------------------------------------------------------------------------
    def check_listeners(self) -> Iterator[Check]:
        wanted = [("exporter listen", self.settings.exporter.listen, "/metrics")]
        if self.settings.dashboard.enabled and self.role != "agent":
            wanted.append(("dashboard listen", self.settings.dashboard.listen, "/healthz"))
        for name, listen, path in wanted:
            yield _check_listen(name, listen, path)
        if self.settings.exporter.web_config_file or self.settings.dashboard.tls_cert_file or \
                self.settings.dashboard.tls_key_file:
            yield self.check_listener_security()

    def check_listener_security(self) -> Check:
        """The web configuration file of /metrics and the dashboard's certificate load (only when configured)."""
        from collector.errors import ConfigError
        from rightsizer.listeners import check_tls_files, metrics_banner

        try:
            check_tls_files(self.settings, self.role)
        except ConfigError as exc:
            return Check("tls and auth", FAIL, str(exc))
        notes = [f"/metrics {metrics_banner(self.settings.exporter.listen, self.settings.exporter.web_config_file)}"]
        if self.settings.dashboard.enabled and self.role != "agent":
            notes.append("dashboard " + ("https" if self.settings.dashboard.tls_cert_file else "plain HTTP"))
        return Check("tls and auth", OK, "; ".join(notes))

    # -- clock -------------------------------------------------------------------------------
    def check_clock(self) -> Check:
        now = datetime.now(UTC)
        if now.year < 2024:
            return Check("clock", FAIL, f"system time {now:%Y-%m-%d %H:%M} UTC is in the past; set the clock (NTP)")
        notes = [f"{now:%Y-%m-%d %H:%M:%S} UTC"]
        if self.newest_sample is not None and not self.demo:
            ahead = (self.newest_sample - now).total_seconds()
            if ahead > CLOCK_SKEW_S:
                return Check("clock", FAIL, f"the store holds samples {ahead:.0f} s in the future (newest "
                             f"{self.newest_sample:%Y-%m-%d %H:%M} UTC): this clock was set back or the "
                             "collector's host runs ahead; fix NTP")
        if self._engine_skew is not None:
            if abs(self._engine_skew) > ENGINE_SKEW_S:
                return Check("clock", FAIL, f"the Prometheus server's clock differs from ours by "
                             f"{self._engine_skew:+.0f} s; fix NTP on one of them")
            notes.append(f"Prometheus server {self._engine_skew:+.1f} s")
        try:
            synced = Path("/run/systemd/timesync/synchronized").exists()
        except OSError:
            synced = False
        if synced:
            notes.append("systemd-timesyncd synchronized")
        return Check("clock", OK, "; ".join(notes))


def _lock_holder(lock: Path) -> str:
    """Who holds the store's writer lock now (what the holder wrote into it), or "" when nobody does."""
    import fcntl
    import os

    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: never blocks a writer for long, never writes
    except BlockingIOError:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
    finally:
        os.close(fd)  # closing drops a lock taken here
    return ""


def _some(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def _check_listen(name: str, listen: str, probe_path: str) -> Check:
    from dashboard.web import probe_bind
    from rightsizer.service import _split

    host, port = _split(listen)
    try:
        probe_bind(host, port)
    except OSError as exc:
        if _is_rightsizer(host, port, probe_path):
            return Check(name, OK, f"{listen} is served by a running rightsizer")
        return Check(name, FAIL, f"{listen} cannot be bound ({exc.strerror or exc}) and is not a rightsizer; stop "
                     "what holds it or pick another port")
    return Check(name, OK, f"{listen} is free")


def _is_rightsizer(host: str, port: int, path: str) -> bool:
    shown = f"[{host}]" if ":" in host else (host or "127.0.0.1")
    if shown in ("0.0.0.0", "[::]"):
        shown = "127.0.0.1"
    with contextlib.suppress(OSError, ValueError):
        with urllib.request.urlopen(f"http://{shown}:{port}{path}", timeout=3) as resp:  # noqa: S310 - local probe
            body = resp.read(65536).decode("utf-8", "replace")
            return "rightsizer" in body or resp.headers.get("Server", "") == "rightsizer"
    return False
