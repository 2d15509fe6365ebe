"""libvirt implementations of the hypervisor boundary: the only module that imports ``libvirt``.

``LibvirtSource`` samples one URI read-only: one bulk ``getAllDomainStats`` call per cycle, plus a
per-domain path for drivers whose bulk call returns only the state group (the test driver).
``LibvirtControl`` is the read-write side the resize actions build on. ``map_libvirt_errors``
translates ``libvirtError`` codes into ``collector.errors`` classes.

libvirt units (https://libvirt.org/html/libvirt-libvirt-domain.html#virConnectGetAllDomainStats and
virsh(1) dommemstat): memory in KiB (balloon.* incl. swap_in/swap_out, info(), memoryStats()), page faults
as counts, CPU and vCPU delay time in ns, block rd/wr.times in ns, block/net sizes in bytes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import libvirt

from collector.domxml import LABELS_NAMESPACE, LABELS_PREFIX, parse_labels
from collector.errors import (
    ConnectionFailedError,
    HypervisorError,
    NoDataError,
    OperationInvalidError,
    OperationUnsupportedError,
    VmNotFoundError,
    VmShutOffError,
)
from collector.hypervisor.base import DomainInfo, HostCapacity, error_kind
from collector.hypervisor.guestagent import GuestAgentProbe
from collector.model import DiskSample, GuestFsUsage, NetSample, SampleBatch, VmError, VmRef, VmSample, VmState

log = logging.getLogger(__name__)

_KIB = 1024

# Most specific class per libvirt error code; refined by message/domain in ``translate_libvirt_error``.
ERROR_CLASSES: Mapping[int, type[HypervisorError]] = {
    libvirt.VIR_ERR_NO_DOMAIN: VmNotFoundError,
    libvirt.VIR_ERR_OPERATION_INVALID: OperationInvalidError,
    libvirt.VIR_ERR_INVALID_ARG: OperationInvalidError,  # e.g. flags the driver refuses together
    libvirt.VIR_ERR_NO_SUPPORT: OperationUnsupportedError,
    libvirt.VIR_ERR_OPERATION_UNSUPPORTED: OperationUnsupportedError,
    libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED: OperationUnsupportedError,
    libvirt.VIR_ERR_SYSTEM_ERROR: ConnectionFailedError,
    libvirt.VIR_ERR_NO_CONNECT: ConnectionFailedError,
    libvirt.VIR_ERR_INVALID_CONN: ConnectionFailedError,
    libvirt.VIR_ERR_RPC: ConnectionFailedError,
    libvirt.VIR_ERR_AUTH_FAILED: ConnectionFailedError,
}
# Errors raised by the RPC layer itself mean the connection is gone, e.g. after libvirtd restarts:
# "Cannot write data: Broken pipe" (SYSTEM_ERROR) then "client socket is closed" (INTERNAL_ERROR).
_CONNECTION_ERROR_DOMAINS = frozenset({libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE})

_STATE_BY_CODE: Mapping[int, VmState] = {
    libvirt.VIR_DOMAIN_NOSTATE: VmState.OTHER,
    libvirt.VIR_DOMAIN_RUNNING: VmState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: VmState.RUNNING,  # running, waiting on a resource
    libvirt.VIR_DOMAIN_PAUSED: VmState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: VmState.RUNNING,  # still running while it shuts down
    libvirt.VIR_DOMAIN_SHUTOFF: VmState.SHUTOFF,
    libvirt.VIR_DOMAIN_CRASHED: VmState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: VmState.PAUSED,
}

STATS_GROUPS = (
    libvirt.VIR_DOMAIN_STATS_STATE
    | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    | libvirt.VIR_DOMAIN_STATS_BALLOON
    | libvirt.VIR_DOMAIN_STATS_VCPU
    | libvirt.VIR_DOMAIN_STATS_INTERFACE
    | libvirt.VIR_DOMAIN_STATS_BLOCK
)
_MAX_RECONNECT_DELAY_S = 60.0
_FLAG_REJECTED = frozenset(
    {
        libvirt.VIR_ERR_INVALID_ARG,
        libvirt.VIR_ERR_NO_SUPPORT,
        libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
        libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
    }
)
_CREATION_TIME = re.compile(r"<creationTime>(\d+)</creationTime>")
_STATS_PERIOD = re.compile(r"<stats\s+period=['\"](\d+)['\"]")
_LABEL_CACHE_SIZE = 4096


@functools.cache
def silence_libvirt_stderr() -> None:
    """Stop libvirt printing every error to stderr (we raise them instead); runs once per process."""
    libvirt.registerErrorHandler(lambda *_: None, None)


def vm_state(code: int) -> VmState:
    """Fold a libvirt VIR_DOMAIN_* state code into a ``VmState``."""
    return _STATE_BY_CODE.get(code, VmState.OTHER)


def translate_libvirt_error(exc: libvirt.libvirtError, what: str) -> HypervisorError:
    """Return the most specific ``HypervisorError`` for ``exc``; ``what`` names the failed call."""
    code = exc.get_error_code()
    domain = exc.get_error_domain()
    message = exc.get_error_message() or str(exc)
    cls: type[HypervisorError] = ERROR_CLASSES.get(code or 0, HypervisorError)
    if code == libvirt.VIR_ERR_OPERATION_INVALID and "not running" in message:
        cls = VmShutOffError
    elif code == libvirt.VIR_ERR_INTERNAL_ERROR and (
        domain in _CONNECTION_ERROR_DOMAINS or "socket is closed" in message
    ):
        cls = ConnectionFailedError
    elif code == libvirt.VIR_ERR_SYSTEM_ERROR and domain and domain not in _CONNECTION_ERROR_DOMAINS:
        # A system error outside the RPC layer is a host problem (a file, a process), not the connection.
        cls = HypervisorError
    hint = ""
    if cls is ConnectionFailedError:
        hint = "; check that libvirtd is running and the URI is right (scripts/libvirtd-up.sh starts it)"
    return cls(f"{what}: {message} (libvirt error code {code}){hint}")


@contextlib.contextmanager
def map_libvirt_errors(what: str = "libvirt call") -> Iterator[None]:
    """Translate any ``libvirtError`` raised inside into our error classes (``raise ... from exc``)."""
    try:
        yield
    except libvirt.libvirtError as exc:
        raise translate_libvirt_error(exc, what) from exc


def parse_snapshot_time(snapshot_xml: str) -> datetime | None:
    """Return the snapshot's ``<creationTime>`` (epoch seconds in the XML) as UTC, or None."""
    match = _CREATION_TIME.search(snapshot_xml)
    return datetime.fromtimestamp(int(match.group(1)), UTC) if match else None


def memory_used_bytes(stats: Mapping[str, int], prefix: str = "balloon.") -> int | None:
    """Guest-used memory from balloon stats in bytes: available - usable, else available - unused.

    ``stats`` holds KiB values under ``{prefix}available`` etc. Returns None when the guest reported
    neither pair (balloon driver not loaded yet, or no balloon) -- never the allocation.
    """
    available = stats.get(f"{prefix}available")
    if available is None:
        return None
    for key in (f"{prefix}usable", f"{prefix}unused"):
        free = stats.get(key)
        if free is not None and 0 <= free <= available:
            return (available - free) * _KIB
    return None


def vcpu_delay_ns(stats: Mapping[str, int]) -> int | None:
    """Sum of ``vcpu.N.delay`` over vCPUs (ns), or None when the driver reports none.

    libvirt (https://libvirt.org/html/libvirt-libvirt-domain.html#virConnectGetAllDomainStats,
    VIR_DOMAIN_STATS_VCPU): ``vcpu.<num>.delay`` is the time in ns the vCPU thread was enqueued by the host
    scheduler but waiting instead of running (the guest sees it as steal time). libvirt 9.0 reports it.
    """
    total: int | None = None
    for i in range(int(stats.get("vcpu.maximum", stats.get("vcpu.current", 0)))):
        value = stats.get(f"vcpu.{i}.delay")
        if value is not None:
            total = (total or 0) + int(value)
    return total


def bulk_disks(stats: Mapping[str, Any]) -> tuple[DiskSample, ...]:
    """Disks from ``block.N.*`` bulk stats; a value the driver left out stays None (absent, never 0).

    libvirt units (same page, VIR_DOMAIN_STATS_BLOCK): ``rd.reqs``/``wr.reqs`` counts,
    ``rd.bytes``/``wr.bytes`` bytes, ``rd.times``/``wr.times`` nanoseconds spent on reads/writes,
    ``capacity`` the logical size in bytes, ``allocation`` the offset of the highest written sector in bytes.
    """
    disks: list[DiskSample] = []
    for i in range(stats.get("block.count", 0)):
        p = f"block.{i}."
        disks.append(
            DiskSample(
                device=stats.get(p + "name", str(i)),
                read_bytes=stats.get(p + "rd.bytes", 0),
                write_bytes=stats.get(p + "wr.bytes", 0),
                read_reqs=stats.get(p + "rd.reqs"),
                write_reqs=stats.get(p + "wr.reqs"),
                capacity_bytes=stats.get(p + "capacity"),
                allocation_bytes=stats.get(p + "allocation"),
                read_time_ns=stats.get(p + "rd.times"),
                write_time_ns=stats.get(p + "wr.times"),
            )
        )
    return tuple(disks)


@dataclass(frozen=True, slots=True)
class _XmlFacts:
    """What the per-domain path needs from the domain XML."""

    max_vcpus: int
    disks: tuple[str, ...]  # target devs of device='disk'
    nics: tuple[str, ...]  # target dev, else MAC address (interfaceStats accepts either)


def parse_domain_xml(xml: str) -> _XmlFacts:
    """Extract max vCPUs, disk targets and interface names from a domain XML."""
    root = ET.fromstring(xml)
    vcpu = root.find("vcpu")
    max_vcpus = int(vcpu.text) if vcpu is not None and vcpu.text else 0
    disks: list[str] = []
    nics: list[str] = []
    devices = root.find("devices")
    if devices is not None:
        for disk in devices.findall("disk"):
            target = disk.find("target")
            if disk.get("device", "disk") == "disk" and target is not None and target.get("dev"):
                disks.append(target.get("dev", ""))
        for nic in devices.findall("interface"):
            target = nic.find("target")
            mac = nic.find("mac")
            if target is not None and target.get("dev"):
                nics.append(target.get("dev", ""))
            elif mac is not None and mac.get("address"):
                nics.append(mac.get("address", ""))
    return _XmlFacts(max_vcpus=max_vcpus, disks=tuple(disks), nics=tuple(nics))


@dataclass(slots=True)
class _DomainCache:
    """What we remember about one domain between cycles (keyed by UUID)."""

    dom_id: int
    offset: int  # spreads periodic refreshes over cycles
    metadata_xml: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    snapshot_times: tuple[datetime, ...] | None = None
    xml_facts: _XmlFacts | None = None
    balloon_checked_id: int | None = None
    block_info: dict[str, Any] = field(default_factory=dict)  # per-domain path: blockInfo by target dev


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _WaitingToReconnect(ConnectionFailedError):
    """Not connected, and the backoff delay before the next attempt has not passed yet."""


class LibvirtSource:
    """Samples every domain of one libvirt URI over a read-only connection (``HypervisorSource``).

    The connection opens lazily; after a failure the next attempt waits 1, 2, 4 ... 60 s, and until
    then ``sample_all`` returns a batch with ``ok=False``. Labels are read with one ``metadata()``
    call per domain per cycle (parsed only when the text changes). Snapshot times cost one call per
    domain plus one per snapshot (about 0.15 ms per call over qemu:///system, measured): too much for
    every cycle of a large host, so they are refreshed when a domain is first seen and then every
    ``snapshot_every_cycles`` cycles (spread over the cycles by UUID); the cached times are reported in
    between. The per-domain path re-reads the domain XML (disks, NICs, max vCPUs) on the same schedule
    (``xml_refresh_every_cycles``) and whenever the domain restarts.
    With ``enable_balloon_stats`` a short read-write connection turns on the guest's balloon stats
    period (``balloon_period_s``) once per newly started domain that has none configured.
    """

    def __init__(
        self,
        uri: str,
        *,
        balloon_period_s: int = 10,
        enable_balloon_stats: bool = False,
        snapshot_every_cycles: int = 30,
        xml_refresh_every_cycles: int = 30,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        open_readonly: Callable[[str], Any] | None = None,
        open_readwrite: Callable[[str], Any] | None = None,
        guest_agent_every_s: float = 0.0,
        guest_agent_timeout_s: float = 10.0,
    ) -> None:
        if balloon_period_s < 0:
            raise ValueError(f"balloon_period_s must be >= 0 seconds, got {balloon_period_s!r}")
        if snapshot_every_cycles < 1 or xml_refresh_every_cycles < 1:
            raise ValueError(
                f"refresh periods must be >= 1 cycle, got snapshot_every_cycles={snapshot_every_cycles!r}, "
                f"xml_refresh_every_cycles={xml_refresh_every_cycles!r}"
            )
        silence_libvirt_stderr()
        self._uri = uri
        self._balloon_period_s = balloon_period_s
        self._enable_balloon_stats = enable_balloon_stats and balloon_period_s > 0
        self._snapshot_every = snapshot_every_cycles
        self._xml_every = xml_refresh_every_cycles
        self._clock = clock
        self._monotonic = monotonic
        self._open_readonly = open_readonly or libvirt.openReadOnly
        self._open_readwrite = open_readwrite or libvirt.open
        self._conn: Any = None
        self._host = ""
        self._host_cpus: int | None = None
        self._driver = ""
        self._synthetic_cpu = False
        self._nowait = True
        self._bulk_supported = True
        self._unsupported: set[str] = set()
        self._failures = 0
        self._next_attempt_at = 0.0
        self._cycle = 0
        self._cache: dict[str, _DomainCache] = {}
        self._label_cache: dict[str, dict[str, str]] = {}
        self._agent = (GuestAgentProbe(uri, every_s=guest_agent_every_s, timeout_s=guest_agent_timeout_s,
                                       open_readwrite=self._open_readwrite, clock=clock)
                       if guest_agent_every_s > 0 else None)

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def driver(self) -> str:
        """libvirt driver type of the open connection (e.g. "QEMU", "TEST"); empty before connecting."""
        return self._driver

    def close(self) -> None:
        """Close the connection (and the guest-agent probe's); the next ``sample_all`` reconnects at once."""
        if self._agent is not None:
            self._agent.close()
        conn, self._conn = self._conn, None
        self._next_attempt_at = 0.0
        self._failures = 0
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def __enter__(self) -> LibvirtSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connection -----------------------------------------------------------------------------

    def _connect(self) -> Any:
        """Return the open connection, opening it if due; raises ConnectionFailedError."""
        if self._conn is not None:
            return self._conn
        now = self._monotonic()
        if now < self._next_attempt_at:
            raise _WaitingToReconnect(
                f"{self._uri}: not connected; next attempt in {self._next_attempt_at - now:.1f}s "
                f"after {self._failures} failed attempt(s)"
            )
        try:
            with map_libvirt_errors(f"openReadOnly({self._uri!r})"):
                conn = self._open_readonly(self._uri)
                driver = conn.getType()
                host = conn.getHostname()
                host_cpus = int(conn.getInfo()[2])  # [model, memory MiB, cpus, mhz, nodes, sockets, ...]
        except HypervisorError as exc:
            self._failures += 1
            delay = min(_MAX_RECONNECT_DELAY_S, 2.0 ** (self._failures - 1))
            self._next_attempt_at = now + delay
            raise ConnectionFailedError(f"{exc}; next attempt in {delay:.0f}s") from exc
        self._conn = conn
        self._driver = driver
        self._host = host
        self._host_cpus = host_cpus
        # The test driver's info() cpuTime is wall-clock ns since the epoch, not CPU time.
        self._synthetic_cpu = driver.lower() == "test"
        self._failures = 0
        self._next_attempt_at = 0.0
        self._nowait = True
        self._bulk_supported = True
        self._unsupported.clear()
        log.info("connected to %s (driver %s, host %s)", self._uri, driver, host)
        return conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    # -- one cycle ------------------------------------------------------------------------------

    def sample_all(self) -> SampleBatch:
        """Sample every domain once; never raises (see ``HypervisorSource.sample_all``)."""
        started = self._monotonic()
        taken_at = self._clock()
        try:
            conn = self._connect()
            records = self._records(conn)
        except ConnectionFailedError as exc:
            if self._conn is not None:
                self._drop_connection()
            # Warn on each failed attempt; the cycles waiting for the next attempt stay quiet.
            log.log(logging.DEBUG if isinstance(exc, _WaitingToReconnect) else logging.WARNING, "%s", exc)
            return self._batch(taken_at, started, (), (VmError(None, "connection", str(exc)),), ok=False)
        except HypervisorError as exc:
            log.warning("listing domains on %s failed: %s", self._uri, exc)
            return self._batch(taken_at, started, (), (VmError(None, error_kind(exc), str(exc)),), ok=False)

        self._cycle += 1
        samples: list[VmSample] = []
        errors: list[VmError] = []
        seen: set[str] = set()
        new_running: list[tuple[Any, _DomainCache]] = []
        for dom, stats in records:
            ref: VmRef | None = None
            try:
                ref = VmRef(self._uri, dom.UUIDString(), dom.name())
                seen.add(ref.uuid)
                entry = self._entry(dom, ref.uuid)
                sample = self._sample(dom, ref, stats, entry)
                samples.append(sample)
                if sample.state is VmState.RUNNING and sample.cpu_time_ns is None and not self._synthetic_cpu:
                    # Keep the inventory row, but say that this cycle has no usage for the VM.
                    gap = NoDataError(f"{ref.name}: running but libvirt reported no CPU time this cycle")
                    log.warning("%s", gap)
                    errors.append(VmError(ref, error_kind(gap), str(gap)))
                if (
                    self._enable_balloon_stats
                    and sample.state is VmState.RUNNING
                    and entry.balloon_checked_id != entry.dom_id
                ):
                    new_running.append((dom, entry))
            except ConnectionFailedError as exc:
                # The daemon went away mid-cycle: report what we have and reconnect next cycle.
                self._drop_connection()
                log.warning("%s", exc)
                errors.append(VmError(ref, "connection", str(exc)))
                return self._batch(taken_at, started, tuple(samples), tuple(errors), ok=False)
            except (VmNotFoundError, VmShutOffError) as exc:
                log.debug("%s: %s", ref.name if ref else "domain", exc)
                errors.append(VmError(ref, error_kind(exc), str(exc)))
            except HypervisorError as exc:
                log.warning("%s: %s", ref.name if ref else "domain", exc)
                errors.append(VmError(ref, error_kind(exc), str(exc)))
            except Exception as exc:  # noqa: BLE001 - one VM must never end the cycle (STYLE.md section 5)
                log.exception("sampling %s failed", ref.name if ref else "a domain")
                errors.append(VmError(ref, "error", f"{type(exc).__name__}: {exc}"))
        for uuid in self._cache.keys() - seen:
            del self._cache[uuid]
        if new_running:
            self._turn_on_balloon_stats(new_running)
        return self._batch(taken_at, started, tuple(samples), tuple(errors), ok=True,
                           guest_fs=self._guest_fs(samples))

    def _guest_fs(self, samples: list[VmSample]) -> Mapping[str, GuestFsUsage]:
        """Hand the running QEMU domains that are due to the guest-agent probe; return what it has so far."""
        if self._agent is None or self._driver.upper() != "QEMU":  # only the QEMU driver has guest agents
            return {}
        self._agent.request(s.ref.uuid for s in samples if s.state is VmState.RUNNING)
        return self._agent.take()

    @property
    def guest_agent(self) -> GuestAgentProbe | None:
        """The guest filesystem probe (None when ``guest_agent_every_s`` is 0)."""
        return self._agent

    def _batch(
        self,
        taken_at: datetime,
        started: float,
        samples: tuple[VmSample, ...],
        errors: tuple[VmError, ...],
        *,
        ok: bool,
        guest_fs: Mapping[str, GuestFsUsage] | None = None,
    ) -> SampleBatch:
        return SampleBatch(
            uri=self._uri,
            host=self._host,
            taken_at=taken_at,
            samples=samples,
            errors=errors,
            duration_s=self._monotonic() - started,
            ok=ok,
            driver=self._driver,
            host_cpus=self._host_cpus,
            guest_fs=guest_fs or {},
        )

    def _records(self, conn: Any) -> list[tuple[Any, Mapping[str, Any]]]:
        """One bulk stats call (NOWAIT where supported); every domain with an empty dict if unsupported."""
        what = f"getAllDomainStats on {self._uri}"
        if self._bulk_supported and self._nowait:
            try:
                records: list[tuple[Any, Mapping[str, Any]]] = conn.getAllDomainStats(
                    STATS_GROUPS, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
                )
                return records
            except libvirt.libvirtError as exc:
                if exc.get_error_code() not in _FLAG_REJECTED:
                    raise translate_libvirt_error(exc, what) from exc
                # Daemons before libvirt 4.5 reject NOWAIT: ask without it from now on.
                log.debug("%s: bulk stats without NOWAIT (%s)", self._uri, exc.get_error_message())
                self._nowait = False
        if self._bulk_supported:
            try:
                with map_libvirt_errors(what):
                    records = conn.getAllDomainStats(STATS_GROUPS, 0)
                return records
            except OperationUnsupportedError as exc:
                log.info("%s: no bulk stats (%s); sampling domain by domain", self._uri, exc)
                self._bulk_supported = False
        with map_libvirt_errors(f"listAllDomains on {self._uri}"):
            return [(dom, {}) for dom in conn.listAllDomains(0)]

    def _entry(self, dom: Any, uuid: str) -> _DomainCache:
        dom_id = dom.ID()
        entry = self._cache.get(uuid)
        if entry is None:
            entry = _DomainCache(dom_id=dom_id, offset=zlib.crc32(uuid.encode()) % 1_000_003)
            self._cache[uuid] = entry
        elif entry.dom_id != dom_id:
            # Restarted (or started/stopped): the live definition may differ now.
            entry.dom_id = dom_id
            entry.xml_facts = None
        return entry

    def _due(self, entry: _DomainCache, every: int) -> bool:
        return (self._cycle + entry.offset) % every == 0

    def _sample(self, dom: Any, ref: VmRef, stats: Mapping[str, Any], entry: _DomainCache) -> VmSample:
        labels = self._labels(dom, ref, entry)
        snapshots = self._snapshot_times(dom, ref, entry)
        if "balloon.current" in stats and "vcpu.current" in stats:
            return self._from_bulk(ref, stats, labels, snapshots)
        # Drivers such as the test driver return only the state group from the bulk call.
        return self._from_calls(dom, ref, entry, labels, snapshots)

    def _from_bulk(
        self,
        ref: VmRef,
        stats: Mapping[str, Any],
        labels: Mapping[str, str],
        snapshots: tuple[datetime, ...],
    ) -> VmSample:
        state = vm_state(stats.get("state.state", libvirt.VIR_DOMAIN_NOSTATE))
        running = state is VmState.RUNNING or state is VmState.PAUSED
        disks = bulk_disks(stats)
        nets = tuple(
            NetSample(
                device=stats.get(f"net.{i}.name", str(i)),
                rx_bytes=stats.get(f"net.{i}.rx.bytes", 0),
                tx_bytes=stats.get(f"net.{i}.tx.bytes", 0),
            )
            for i in range(stats.get("net.count", 0))
        )
        swap_in = stats.get("balloon.swap_in")
        swap_out = stats.get("balloon.swap_out")
        cpu_time = stats.get("cpu.time") if running and not self._synthetic_cpu else None
        faults = stats.get("balloon.major_fault")
        return VmSample(
            ref=ref,
            host=self._host,
            state=state,
            vcpus=stats["vcpu.current"],
            max_vcpus=stats.get("vcpu.maximum", stats["vcpu.current"]),
            memory_bytes=stats["balloon.current"] * _KIB,
            max_memory_bytes=stats.get("balloon.maximum", stats["balloon.current"]) * _KIB,
            cpu_time_ns=cpu_time,
            memory_used_bytes=memory_used_bytes(stats) if running else None,
            swap_in_bytes=swap_in * _KIB if swap_in is not None and running else None,
            swap_out_bytes=swap_out * _KIB if swap_out is not None and running else None,
            major_faults=faults if running else None,
            cpu_delay_ns=vcpu_delay_ns(stats) if running else None,
            disks=disks,
            nets=nets,
            labels=labels,
            snapshot_times=snapshots,
        )

    def _optional(self, api: str, what: str, call: Callable[[], Any]) -> Any:
        """Run one per-domain stats call; None when the driver lacks it (remembered) or the VM is off."""
        if api in self._unsupported:
            return None
        try:
            return call()
        except libvirt.libvirtError as exc:  # no context manager here: this runs ~4 times per domain
            err = translate_libvirt_error(exc, what)
            if isinstance(err, OperationUnsupportedError):
                log.debug("%s: %s unsupported, not asking again (%s)", self._uri, api, err)
                self._unsupported.add(api)
                return None
            if isinstance(err, VmShutOffError):
                return None
            raise err from exc

    def _from_calls(
        self,
        dom: Any,
        ref: VmRef,
        entry: _DomainCache,
        labels: Mapping[str, str],
        snapshots: tuple[datetime, ...],
    ) -> VmSample:
        try:
            state_code, max_mem_kib, mem_kib, nr_vcpus, cpu_time_ns = dom.info()
        except libvirt.libvirtError as exc:
            raise translate_libvirt_error(exc, f"info({ref.name!r})") from exc
        state = vm_state(state_code)
        running = state is VmState.RUNNING or state is VmState.PAUSED
        facts = entry.xml_facts
        if facts is None or self._due(entry, self._xml_every) or nr_vcpus > facts.max_vcpus:
            with map_libvirt_errors(f"XMLDesc({ref.name!r})"):
                facts = parse_domain_xml(dom.XMLDesc(0))
            entry.xml_facts = facts
            entry.block_info = {}  # capacity/allocation are re-read on the XML schedule, not every cycle
        mem_stats: Mapping[str, int] | None = None
        disks: list[DiskSample] = []
        nets: list[NetSample] = []
        if running:
            mem_stats = self._optional("memoryStats", f"memoryStats({ref.name!r})", dom.memoryStats)
            for dev in facts.disks:
                what = f"({ref.name!r}, {dev!r})"
                bs = self._optional("blockStats", "blockStats" + what, functools.partial(dom.blockStats, dev))
                if bs is None:
                    continue
                bi = entry.block_info.get(dev)
                if bi is None:
                    bi = self._optional("blockInfo", "blockInfo" + what, functools.partial(dom.blockInfo, dev))
                    entry.block_info[dev] = bi
                # blockStats: (rd_req, rd_bytes, wr_req, wr_bytes, errs)
                # blockInfo: [capacity, allocation, physical]
                disks.append(
                    DiskSample(
                        device=dev,
                        read_bytes=bs[1],
                        write_bytes=bs[3],
                        read_reqs=bs[0],
                        write_reqs=bs[2],
                        capacity_bytes=bi[0] if bi else None,
                        allocation_bytes=bi[1] if bi else None,
                    )
                )
            for dev in facts.nics:
                what = f"interfaceStats({ref.name!r}, {dev!r})"
                ns = self._optional("interfaceStats", what, functools.partial(dom.interfaceStats, dev))
                # interfaceStats: (rx_bytes, rx_packets, rx_errs, rx_drop, tx_bytes, tx_packets, ...)
                if ns is not None:
                    nets.append(NetSample(device=dev, rx_bytes=ns[0], tx_bytes=ns[4]))
        # memoryStats() keys carry no "balloon." prefix; swap_in/swap_out are KiB, major_fault a count.
        swap_in = mem_stats.get("swap_in") if mem_stats else None
        swap_out = mem_stats.get("swap_out") if mem_stats else None
        faults = mem_stats.get("major_fault") if mem_stats else None
        return VmSample(
            ref=ref,
            host=self._host,
            state=state,
            vcpus=nr_vcpus,
            max_vcpus=max(facts.max_vcpus, nr_vcpus),
            memory_bytes=mem_kib * _KIB,
            max_memory_bytes=max_mem_kib * _KIB,
            cpu_time_ns=cpu_time_ns if running and not self._synthetic_cpu else None,
            memory_used_bytes=memory_used_bytes(mem_stats, prefix="") if mem_stats else None,
            swap_in_bytes=swap_in * _KIB if swap_in is not None else None,
            swap_out_bytes=swap_out * _KIB if swap_out is not None else None,
            major_faults=faults,
            disks=tuple(disks),
            nets=tuple(nets),
            labels=labels,
            snapshot_times=snapshots,
        )

    def _labels(self, dom: Any, ref: VmRef, entry: _DomainCache) -> Mapping[str, str]:
        if "metadata" in self._unsupported:
            return {}
        try:
            metadata_xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, LABELS_NAMESPACE, 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                entry.metadata_xml, entry.labels = None, {}
                return entry.labels
            err = translate_libvirt_error(exc, f"metadata({ref.name!r})")
            if isinstance(err, OperationUnsupportedError):
                self._unsupported.add("metadata")
                return {}
            raise err from exc
        if metadata_xml != entry.metadata_xml:
            labels = self._label_cache.get(metadata_xml)
            if labels is None:
                try:
                    labels = parse_labels(metadata_xml)
                except ET.ParseError as exc:
                    log.warning("%s: unreadable labels %r (%s); ignoring them", ref.name, metadata_xml, exc)
                    labels = {}
                if len(self._label_cache) >= _LABEL_CACHE_SIZE:
                    self._label_cache.clear()
                self._label_cache[metadata_xml] = labels
            entry.metadata_xml, entry.labels = metadata_xml, labels
        return entry.labels

    def _snapshot_times(self, dom: Any, ref: VmRef, entry: _DomainCache) -> tuple[datetime, ...]:
        if "snapshots" in self._unsupported:
            return ()
        if entry.snapshot_times is not None and not self._due(entry, self._snapshot_every):
            return entry.snapshot_times
        times: list[datetime] = []
        try:
            with map_libvirt_errors(f"listAllSnapshots({ref.name!r})"):
                for snap in dom.listAllSnapshots(0):
                    created = parse_snapshot_time(snap.getXMLDesc(0))
                    if created is not None:
                        times.append(created)
        except OperationUnsupportedError:
            self._unsupported.add("snapshots")
            return ()
        entry.snapshot_times = tuple(sorted(times))
        return entry.snapshot_times

    def _turn_on_balloon_stats(self, doms: list[tuple[Any, _DomainCache]]) -> None:
        """Set the balloon stats period on running domains that have none (one short RW connection)."""
        todo: list[tuple[str, str]] = []
        for dom, entry in doms:
            entry.balloon_checked_id = entry.dom_id
            if self._synthetic_cpu:
                continue  # test:/// opens a separate in-memory copy per connection: nothing to set
            try:
                xml = dom.XMLDesc(0)
            except libvirt.libvirtError as exc:
                log.debug("%s: cannot read XML to check balloon stats: %s", dom.name(), exc)
                continue
            if "<memballoon model='virtio'" not in xml and '<memballoon model="virtio"' not in xml:
                continue
            period = _STATS_PERIOD.search(xml)
            if period is None or int(period.group(1)) == 0:
                todo.append((dom.UUIDString(), dom.name()))
        if not todo:
            return
        try:
            conn = self._open_readwrite(self._uri)
        except libvirt.libvirtError as exc:
            log.debug("%s: no read-write connection for balloon stats (%s)", self._uri, exc)
            return
        try:
            for uuid, name in todo:
                try:
                    conn.lookupByUUIDString(uuid).setMemoryStatsPeriod(
                        self._balloon_period_s, libvirt.VIR_DOMAIN_AFFECT_LIVE
                    )
                    log.debug("%s: balloon stats period set to %ss", name, self._balloon_period_s)
                except libvirt.libvirtError as exc:
                    log.debug("%s: cannot set balloon stats period: %s", name, exc)
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()


class LibvirtControl:
    """Read-write control of one libvirt URI (``HypervisorControl``); the connection opens lazily."""

    def __init__(self, uri: str, *, open_readwrite: Callable[[str], Any] | None = None) -> None:
        silence_libvirt_stderr()
        self._uri = uri
        self._open = open_readwrite or libvirt.open
        self._conn: Any = None

    @property
    def uri(self) -> str:
        return self._uri

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def __enter__(self) -> LibvirtControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> Any:
        if self._conn is None:
            with self._errors(f"open({self._uri!r})"):
                self._conn = self._open(self._uri)
        return self._conn

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Like ``map_libvirt_errors``; a broken connection is dropped so the next call reopens it."""
        try:
            with map_libvirt_errors(what):
                yield
        except ConnectionFailedError:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    conn.close()
            raise

    def _domain(self, ref: VmRef) -> Any:
        with self._errors(f"lookup of {ref.name!r} ({ref.uuid}) on {self._uri}"):
            return self._connection().lookupByUUIDString(ref.uuid)

    def _ref(self, dom: Any) -> VmRef:
        return VmRef(self._uri, dom.UUIDString(), dom.name())

    def lookup(self, name_or_uuid: str) -> VmRef:
        """Find a domain by UUID string or name; raises VmNotFoundError."""
        conn = self._connection()
        try:
            dom = conn.lookupByUUIDString(name_or_uuid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_ARG):
                with self._errors(f"lookup of {name_or_uuid!r} on {self._uri}"):
                    raise
            with self._errors(f"lookup of {name_or_uuid!r} on {self._uri}"):
                dom = conn.lookupByName(name_or_uuid)
        return self._ref(dom)

    def info(self, ref: VmRef) -> DomainInfo:
        """Read state and allocation: live values when running, the persistent config otherwise."""
        dom = self._domain(ref)
        with self._errors(f"info({ref.name!r})"):
            state_code, max_mem_kib, mem_kib, nr_vcpus, _cpu_time = dom.info()
            active = dom.isActive()
            which = libvirt.VIR_DOMAIN_AFFECT_LIVE if active else libvirt.VIR_DOMAIN_AFFECT_CONFIG
            max_vcpus = dom.vcpusFlags(which | libvirt.VIR_DOMAIN_VCPU_MAXIMUM)
            persistent = bool(dom.isPersistent())
        return DomainInfo(
            ref=ref,
            state=vm_state(state_code),
            vcpus=nr_vcpus,
            max_vcpus=max_vcpus,
            memory_bytes=mem_kib * _KIB,
            max_memory_bytes=max_mem_kib * _KIB,
            persistent=persistent,
        )

    def state(self, ref: VmRef) -> VmState:
        """Read the domain's run state."""
        dom = self._domain(ref)
        with self._errors(f"state({ref.name!r})"):
            return vm_state(dom.state(0)[0])

    def get_domain_xml(self, ref: VmRef, *, inactive: bool) -> str:
        """Return the persistent (``inactive``) or live domain XML."""
        dom = self._domain(ref)
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        with self._errors(f"XMLDesc({ref.name!r})"):
            xml: str = dom.XMLDesc(flags)
        return xml

    def define_xml(self, xml: str) -> VmRef:
        """Define or redefine a persistent domain from ``xml``."""
        with self._errors(f"defineXML on {self._uri}"):
            dom = self._connection().defineXML(xml)
        return self._ref(dom)

    def set_labels(self, ref: VmRef, labels: Mapping[str, str], *, live: bool, config: bool) -> None:
        """Replace the domain's labels (our metadata namespace) live and/or in the persistent config.

        One ``setMetadata`` call per target: some drivers refuse LIVE|CONFIG in one call.
        """
        dom = self._domain(ref)
        # libvirt binds the element to the namespace itself: the text carries no prefix
        items = "".join(f"<label name={quoteattr(k)}>{escape(v)}</label>" for k, v in sorted(labels.items()))
        text = f"<labels>{items}</labels>"
        for wanted, flag in ((config, libvirt.VIR_DOMAIN_AFFECT_CONFIG), (live, libvirt.VIR_DOMAIN_AFFECT_LIVE)):
            if wanted:
                with self._errors(f"setMetadata({ref.name!r})"):
                    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, text, LABELS_PREFIX, LABELS_NAMESPACE, flag)

    @staticmethod
    def _flags(live: bool, config: bool, maximum: int, use_maximum: bool) -> int:
        if not (live or config):
            raise ValueError("choose live=True and/or config=True; neither would change nothing")
        flags = (libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0) | (
            libvirt.VIR_DOMAIN_AFFECT_CONFIG if config else 0
        )
        return flags | (maximum if use_maximum else 0)

    def set_vcpus(self, ref: VmRef, count: int, *, live: bool, config: bool, maximum: bool = False) -> None:
        """Set vCPUs (``maximum`` sets the ceiling, config only); OperationInvalidError when refused."""
        if count < 1:
            raise ValueError(f"vCPU count must be >= 1, got {count!r}")
        flags = self._flags(live, config, libvirt.VIR_DOMAIN_VCPU_MAXIMUM, maximum)
        dom = self._domain(ref)
        with self._errors(f"setVcpusFlags({ref.name!r}, {count}, flags={flags})"):
            dom.setVcpusFlags(count, flags)

    def set_memory(
        self, ref: VmRef, memory_bytes: int, *, live: bool, config: bool, maximum: bool = False
    ) -> None:
        """Set memory in bytes (libvirt takes KiB; rounded down), or its maximum (config only)."""
        if memory_bytes < _KIB:
            raise ValueError(f"memory must be >= 1 KiB, got {memory_bytes!r} bytes")
        flags = self._flags(live, config, libvirt.VIR_DOMAIN_MEM_MAXIMUM, maximum)
        dom = self._domain(ref)
        with self._errors(f"setMemoryFlags({ref.name!r}, {memory_bytes // _KIB} KiB, flags={flags})"):
            dom.setMemoryFlags(memory_bytes // _KIB, flags)

    def host_capacity(self) -> HostCapacity:
        """Read the host's logical CPUs and memory (getInfo reports MiB)."""
        conn = self._connection()
        with self._errors(f"getInfo on {self._uri}"):
            _model, memory_mib, cpus, *_rest = conn.getInfo()
            hostname = conn.getHostname()
        return HostCapacity(hostname=hostname, cpus=cpus, memory_bytes=memory_mib * 1024 * 1024)

    def shutdown(self, ref: VmRef) -> None:
        """Send the guest an ACPI shutdown request; returns without waiting."""
        dom = self._domain(ref)
        with self._errors(f"shutdown({ref.name!r})"):
            dom.shutdown()

    def start(self, ref: VmRef) -> None:
        """Start a defined, shut-off domain."""
        dom = self._domain(ref)
        with self._errors(f"create({ref.name!r})"):
            dom.create()

    def destroy(self, ref: VmRef) -> None:
        """Power the domain off at once."""
        dom = self._domain(ref)
        with self._errors(f"destroy({ref.name!r})"):
            dom.destroy()

    def snapshot_times(self, ref: VmRef) -> tuple[datetime, ...]:
        """Creation times (UTC) of the domain's snapshots, oldest first."""
        dom = self._domain(ref)
        times: list[datetime] = []
        with self._errors(f"listAllSnapshots({ref.name!r})"):
            for snap in dom.listAllSnapshots(0):
                created = parse_snapshot_time(snap.getXMLDesc(0))
                if created is not None:
                    times.append(created)
        return tuple(sorted(times))
